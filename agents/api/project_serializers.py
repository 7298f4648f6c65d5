"""The serializers of the Project Management API's project endpoints (agents/api/projects.py): the inputs, checked
for their shape only (the engine validates the document as a whole and names each fault by location), and the
project document's schema for the OpenAPI document.

The document itself is returned as the service stored it (`agents.selectors.project_document`, secrets redacted),
not through these serializers: it is already in the API's shape, and a large project (thousands of steps) would
spend most of a request in DRF's per-field serialization. The output serializers here describe it."""
from rest_framework import serializers

from agents.models import Project
from agents.services import MAX_LANGUAGE, MAX_NAME
from conversations.api.serializers import StrictCharField

FRAMEWORKS = list(Project.Framework.values)
# Read-only members of the document: a client may send back what GET returned; they are ignored.
READ_ONLY = ("id", "slug", "createdAt", "updatedAt")


class JsonObjectField(serializers.DictField):
    """A JSON object, kept as it is (DRF's DictField would rebuild it key by key)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return data


class JsonObjectListField(serializers.ListField):
    """A list of JSON objects, kept as it is: the engine checks each item and names the one at fault."""

    child = serializers.DictField()

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return data


# --- the document's schema (documentation of the shapes; DESIGN.md defines steps and connections)

class StepSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(help_text="start, message, buttons, capture, condition, set, jump, media, end, "
                                           "handoff, api, ai, kb, agent, data_query")
    data = serializers.DictField(required=False, help_text="What the step type takes")


class ConnectionSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="A step id of this workflow")
    port = serializers.CharField(required=False, help_text="A port of the source step (default next)")
    target = serializers.CharField(help_text="A step id of this workflow")


class WorkflowSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="wf_…, unique in the project")
    name = serializers.CharField()
    steps = StepSerializer(many=True, help_text="Exactly one of type start")
    connections = ConnectionSerializer(many=True, required=False)


class VariableSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Letters, digits and _; unique")
    type = serializers.ChoiceField(choices=["string", "number", "integer", "boolean", "object", "array"],
                                   required=False)
    default = serializers.JSONField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True)


class ToolSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="1–64 letters, digits, _ or -: the name the model calls")
    kind = serializers.ChoiceField(choices=["http", "mcp"], required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.DictField(required=False, help_text='A JSON Schema of "type": "object"')
    http = serializers.DictField(required=False, help_text="{method, url (http or https), headers?, timeoutMs?, "
                                                           "body?}; header values are shown redacted")
    mcp = serializers.DictField(required=False, help_text="{url, headers?, timeoutMs?}")


class PhaseSerializer(serializers.Serializer):
    id = serializers.CharField()
    instructions = serializers.CharField(required=False, allow_blank=True)
    allowedToolIds = serializers.ListField(child=serializers.CharField(), required=False)
    buttons = serializers.ListField(child=serializers.DictField(), required=False)
    exitCondition = serializers.JSONField(required=False)


class ProjectSummarySerializer(serializers.Serializer):
    """A project in a listing (no document)."""

    id = serializers.CharField(help_text="proj_…")
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    framework = serializers.ChoiceField(choices=FRAMEWORKS)
    language = serializers.CharField()
    slug = serializers.CharField()
    workspaceId = serializers.CharField(source="workspace_id")
    productionVersionId = serializers.CharField(source="production_version_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")


class ProjectDocumentSerializer(serializers.Serializer):
    """The full project document (API.md §3)."""

    id = serializers.CharField(help_text="proj_…")
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    framework = serializers.ChoiceField(choices=FRAMEWORKS)
    language = serializers.CharField()
    slug = serializers.CharField()
    instructions = serializers.CharField(allow_blank=True)
    model = serializers.DictField(help_text="{name?, temperature (0–2), maxTokens}")
    workflows = WorkflowSerializer(many=True)
    variables = VariableSerializer(many=True)
    tools = ToolSerializer(many=True)
    phases = PhaseSerializer(many=True)
    behaviourConfig = serializers.DictField(help_text="{agentHarness: {allowedToolIds, maxHandoffs, snapshotKeys}}")
    widget = serializers.DictField(help_text="{title, color, welcomeMessage, starters}")
    settings = serializers.DictField(help_text="{rateLimit: {perMinute}, fallbackMessage, turnTimeoutSeconds, "
                                               "startWorkflowId?}")
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()


# --- inputs

class ProjectFieldsSerializer(serializers.Serializer):
    name = StrictCharField(max_length=MAX_NAME, required=False)
    description = StrictCharField(allow_null=True, allow_blank=True, trim_whitespace=False, required=False)
    language = StrictCharField(max_length=MAX_LANGUAGE, required=False, help_text="en, pt-BR, …")
    framework = serializers.ChoiceField(choices=FRAMEWORKS, required=False)


class ProjectCreateInputSerializer(ProjectFieldsSerializer):
    name = StrictCharField(max_length=MAX_NAME)
    workspaceId = StrictCharField(required=False, help_text="One of your workspaces (default: your first)")


class ProjectPartsInputSerializer(ProjectFieldsSerializer):
    """PATCH: any top-level part; persist: the whole development document (a part it lacks takes a blank
    project's). `id`, `slug`, `createdAt` and `updatedAt` may be sent back as GET returned them: they are
    ignored."""

    instructions = StrictCharField(allow_blank=True, trim_whitespace=False, required=False)
    model = JsonObjectField(required=False)
    workflows = JsonObjectListField(required=False)
    variables = JsonObjectListField(required=False)
    tools = JsonObjectListField(required=False)
    phases = JsonObjectListField(required=False)
    behaviourConfig = JsonObjectField(required=False)
    widget = JsonObjectField(required=False)
    settings = JsonObjectField(required=False)


class WorkflowInputSerializer(serializers.Serializer):
    """A workflow; its id is the path's (an `id` in the body must be the same). Other members are kept."""

    id = StrictCharField(required=False)
    name = StrictCharField(max_length=MAX_NAME)
    steps = JsonObjectListField()
    connections = JsonObjectListField(required=False)


class ToolInputSerializer(serializers.Serializer):
    """A tool; its id is the path's (an `id` in the body must be the same)."""

    id = StrictCharField(required=False)
    kind = serializers.ChoiceField(choices=["http", "mcp"], required=False)
    description = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    parameters = JsonObjectField(required=False)
    http = JsonObjectField(required=False)
    mcp = JsonObjectField(required=False)
    save = JsonObjectField(required=False)
    prefix = StrictCharField(required=False)


class WorkflowPageSerializer(serializers.Serializer):
    data = WorkflowSerializer(many=True)
    next = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()
