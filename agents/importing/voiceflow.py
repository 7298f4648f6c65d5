"""A Voiceflow `.vf` export (its JSON) → a Conduet project document and the warnings of what did not map.

Shapes handled (see ../shared/fixtures/voiceflow/SOURCES.md): the 2021 format (`data.ports` lists) and the newer
one (`data.portsV2 = {builtIn, dynamic, byKey}`); each diagram (topic or component) becomes a workflow, the root
diagram first (the start workflow). A block (or an `actions` node) is a container of ordered steps: each step keeps
its Voiceflow node id as its step id, and a step whose `next` is unset continues with the next step of its block. A
port may target a block (its first step) or a step directly.

Mapped: text/speak → message (variants kept), buttons and interaction (choice) → buttons (a choice's labels and
utterances come from its intents), capture/captureV2 → capture, if/ifV2 → a chain of condition steps (one per
path, in order; the last `false` is the else path), set/setV2 → set, api → an HTTP tool plus an api step, exit/end
→ end, goTo → a jump to the intent's entry, component/flow → a jump that comes back by `next`, visual → media,
generative/ai_set → ai steps (with a warning: the node's own model settings are not carried over), intent nodes
→ start-step intents (a diagram without a start takes its first intent; other intents get a small workflow whose
start holds the utterances and jumps to the target), `prompt` (wait for any intent) → the path ends there, which
is what a Conduet conversation does. Anything else is a warning naming the node, and the conversation walks
through it by its `next` path."""
import re

from django.utils.text import slugify

from agents.importing import vf_steps
from agents.importing.common import ImportRefused, finish_document
from agents.importing.vf_text import items
from agents.runtime.values import VARIABLE_NAME_RE

CONDUET_BUILT_INS = ("last_utterance", "user_id", "platform", "timestamp", "turn", "last_media")
MAX_NODES = 5000
MAX_DIAGRAMS = 300
BUILT_IN_INTENTS = {
    "VF.YES": ("Yes", ["yes", "yeah", "yep", "sure", "okay"]),
    "VF.NO": ("No", ["no", "nope", "no thanks", "not now"]),
    "VF.HELP": ("Help", ["help", "I need help", "what can you do"]),
    "VF.STOP": ("Stop", ["stop", "cancel", "quit"]),
    "VF.CANCEL": ("Cancel", ["cancel", "never mind"]),
    "VF.REPEAT": ("Repeat", ["repeat", "say that again"]),
    "VF.START_OVER": ("Start over", ["start over", "restart"]),
    "VF.NEXT": ("Next", ["next"]),
    "VF.PREVIOUS": ("Previous", ["previous", "go back"]),
}


class Lookup(dict):
    """A dict whose `get` of an unhashable key (a list where an export should have an id) is None, not a crash."""

    def get(self, key, default=None):
        try:
            return super().get(key, default)
        except TypeError:
            return default


def is_voiceflow(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("diagrams"), dict) and isinstance(data.get("version"), dict)


class VoiceflowImport:
    def __init__(self, export: dict):
        self.export = export
        self.version = export["version"]
        self.warnings: list[str] = []
        self.tools: list[dict] = []
        self.fallback: str | None = None
        self._check_size()
        self.variable_names: dict[str, str] = {}  # id or name → Conduet name
        self.declared: dict[str, dict] = {}
        self._read_variables()
        self.intents = self._read_intents()
        self.workflow_ids: dict[str, str] = Lookup()  # diagram id → workflow id
        self.entries: dict[str, tuple[str, str | None]] = Lookup()  # intent id → (workflow id, step id)
        self.intent_workflows: dict[tuple[str, str], str] = {}  # (diagram id, intent name) → workflow id

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _check_size(self) -> None:
        diagrams = self.export["diagrams"]
        if len(diagrams) > MAX_DIAGRAMS:
            raise ImportRefused(f"The export has {len(diagrams)} diagrams; at most {MAX_DIAGRAMS} are imported.",
                                {"diagrams": [f"At most {MAX_DIAGRAMS}."]})
        count = 0
        for diagram_id, diagram in diagrams.items():
            nodes = diagram.get("nodes") if isinstance(diagram, dict) else None
            if not isinstance(nodes, dict):
                raise ImportRefused(f"Diagram {diagram_id} has no nodes object: this is not a Voiceflow export.",
                                    {f"diagrams.{diagram_id}.nodes": ["Expected an object of nodes."]})
            count += len(nodes)
        if count > MAX_NODES:
            raise ImportRefused(f"The export has {count} nodes; at most {MAX_NODES} are imported.",
                                {"diagrams": [f"At most {MAX_NODES} nodes in all."]})

    # --- variables and intents -------------------------------------------------------------------------------------

    def _read_variables(self) -> None:
        records = self.export.get("variables")
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                name = self.variable(str(record.get("id") or record["name"]), record["name"])
                if isinstance(record.get("id"), str):
                    self.variable_names[record["id"]] = name
                if record.get("defaultValue") not in (None, "") and name in self.declared:
                    self.declared[name]["default"] = record["defaultValue"]
        for name in items(self.version.get("variables")):
            if isinstance(name, str):
                self.variable(name, name)
        platform = self.version.get("platformData")
        slots = platform.get("slots") if isinstance(platform, dict) else None
        for slot in slots if isinstance(slots, list) else []:
            if isinstance(slot, dict) and isinstance(slot.get("key"), str) and isinstance(slot.get("name"), str):
                self.variable_names[slot["key"]] = self.variable(slot["key"], slot["name"])

    def variable(self, key: str, shown: str | None = None) -> str:
        """The Conduet name of a Voiceflow variable referred to by id or name (declared on first sight)."""
        if key in self.variable_names:
            return self.variable_names[key]
        raw = shown if isinstance(shown, str) and shown else key
        name = raw if VARIABLE_NAME_RE.fullmatch(raw) else re.sub(r"\W", "_", raw).strip("_") or "variable"
        if not VARIABLE_NAME_RE.fullmatch(name):
            name = f"v_{name}"
        if name != raw:
            self.warn(f"Variable {raw!r} is named {name!r} (Conduet names are letters, digits and _).")
        self.variable_names[key] = self.variable_names[raw] = name
        if name not in CONDUET_BUILT_INS and name not in self.declared:
            self.declared[name] = {"name": name, "type": None, "description": "from Voiceflow"}
        return name

    def resolve(self, key: str, shown: str | None) -> str:
        return self.variable(key, shown)

    @property
    def known(self) -> set[str]:
        return set(self.variable_names)

    def _read_intents(self) -> dict[str, dict]:
        intents: dict[str, dict] = Lookup({key: {"name": name, "utterances": list(utterances)}
                                           for key, (name, utterances) in BUILT_IN_INTENTS.items()})
        platform = self.version.get("platformData")
        slot_examples = {}
        for slot in items(platform.get("slots")) if isinstance(platform, dict) else []:
            if isinstance(slot, dict) and isinstance(slot.get("key"), str):
                inputs = [i for i in items(slot.get("inputs")) if isinstance(i, str) and i.strip()]
                slot_examples[slot["key"]] = (inputs[0].split(",")[0].strip() if inputs else slot.get("name")) or ""
        for intent in items(platform.get("intents")) if isinstance(platform, dict) else []:
            if not isinstance(intent, dict) or not isinstance(intent.get("key"), str):
                continue
            entry = intents.setdefault(intent["key"], {"name": str(intent.get("name") or intent["key"]),
                                                       "utterances": []})
            for item in items(intent.get("inputs")):
                text = item.get("text") if isinstance(item, dict) else None
                if isinstance(text, str) and text.strip():
                    text = vf_steps.REF_RE.sub(lambda m: slot_examples.get(m.group(2), m.group(1)), text)
                    entry["utterances"].append(" ".join(text.split()))
            if intent.get("slots"):
                entry["slots"] = True
        records = self.export.get("intents")
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                intents.setdefault(record["id"], {"name": str(record.get("name") or record["id"]), "utterances": []})
        utterances = self.export.get("utterances")
        for record in utterances if isinstance(utterances, list) else []:
            if isinstance(record, dict) and record.get("intentID") in intents:
                text = " ".join(vf_steps.flatten_text(record.get("text")).split())
                entry = intents[record["intentID"]]
                if text and text not in entry["utterances"]:
                    entry["utterances"].append(text)
        return intents

    # --- the document ----------------------------------------------------------------------------------------------

    def convert(self) -> tuple[dict, list[str]]:
        diagrams = self.export["diagrams"]
        root = self.version.get("rootDiagramID")
        root = root if isinstance(root, str) else None
        order = sorted(diagrams, key=lambda diagram_id: diagram_id != root)
        taken: set[str] = set()
        for diagram_id in order:
            diagram = diagrams[diagram_id]
            base = "wf_" + (slugify(str(diagram.get("name") or "")).replace("-", "_") or str(diagram_id))[:48]
            workflow_id, n = base, 2
            while workflow_id in taken:
                workflow_id, n = f"{base}_{n}", n + 1
            taken.add(workflow_id)
            self.workflow_ids[diagram_id] = workflow_id
        if root not in diagrams:
            self.warn("The export names no root diagram (version.rootDiagramID): the first diagram starts.")
        converters = [vf_steps.DiagramConverter(self, diagram_id, diagrams[diagram_id]) for diagram_id in order]
        for converter in converters:
            converter.collect_entries()
        workflows = [converter.workflow() for converter in converters]
        workflows += [workflow for converter in converters for workflow in converter.intent_workflows()]
        project = self.export.get("project") if isinstance(self.export.get("project"), dict) else {}
        name = self.version.get("name") or project.get("name") or "Voiceflow import"
        document = {
            "name": str(name)[:200],
            "description": "Imported from Voiceflow.",
            "framework": "conversation-flow",
            "language": "en",
            "variables": list(self.declared.values()),
            "tools": self.tools,
            "workflows": workflows,
            "settings": {"startWorkflowId": workflows[0]["id"] if workflows else None,
                         "fallbackMessage": self.fallback or "Sorry, I didn't understand that.",
                         "rateLimit": {"perMinute": 60}, "turnTimeoutSeconds": 120},
        }
        if not workflows:
            document["settings"].pop("startWorkflowId")
        for variable in document["variables"]:
            if variable["type"] is None:
                variable.pop("type")
        return finish_document(document, self.warnings, self.describe_step), self.warnings

    def describe_step(self, workflow: dict, step: dict) -> str:
        return f"{step.get('type')} step {step.get('id')!r} in {workflow.get('name')!r}"


def voiceflow_convert(export: dict) -> tuple[dict, list[str]]:
    return VoiceflowImport(export).convert()
