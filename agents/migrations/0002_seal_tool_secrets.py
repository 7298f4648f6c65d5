"""Seals the tool header values (secrets) stored in plain text before `agents/secrets.py` existed: in each project's
development document and in each published version's snapshot. A version's digest is kept: it names what was
published, and the sealed value decrypts to the same text.

Not reversible into plain text on purpose (reversing is a no-op): decrypting secrets back into the database is not
something a rollback should do silently.
"""
from django.db import migrations

from agents.secrets import HEADER_SECTIONS, secret_seal


def _seal_plaintext(document) -> bool:
    """Seals, in place, every plain-text header value of the document's tools; whether anything changed."""
    changed = False
    tools = document.get("tools") if isinstance(document, dict) else None
    for tool in tools if isinstance(tools, list) else []:
        for section in HEADER_SECTIONS:
            part = tool.get(section) if isinstance(tool, dict) else None
            headers = part.get("headers") if isinstance(part, dict) else None
            if not isinstance(headers, dict):
                continue
            for name, value in headers.items():
                if isinstance(value, str):
                    headers[name] = secret_seal(value)
                    changed = True
    return changed


def seal(apps, schema_editor):
    Project = apps.get_model("agents", "Project")
    ProjectVersion = apps.get_model("agents", "ProjectVersion")
    for project in Project.objects.only("id", "document").iterator(chunk_size=200):
        if _seal_plaintext(project.document):
            # update(), not save(): `updated_at` (the development spec's cache key) need not move.
            Project.objects.filter(pk=project.pk).update(document=project.document)
    for version in ProjectVersion.objects.only("id", "snapshot").iterator(chunk_size=200):
        if _seal_plaintext(version.snapshot):
            ProjectVersion.objects.filter(pk=version.pk).update(snapshot=version.snapshot)


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [migrations.RunPython(seal, migrations.RunPython.noop, elidable=True)]
