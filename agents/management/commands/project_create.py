import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from agents.management.commands._lookup import workspace_named
from agents.runtime import DocumentError
from agents.services import project_create


class Command(BaseCommand):
    help = "Creates a project (agent) in a workspace from a JSON document, the demo, or blank."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="workspace slug")
        parser.add_argument("--name", required=True)
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--file", type=Path, help="a project document (JSON)")
        source.add_argument("--demo", action="store_true", help="the Acme Support demo document")

    def handle(self, *args, workspace, name, file, demo, **options):
        target = workspace_named(workspace)
        document = None
        if demo:
            from agents.demo import DEMO_PROJECT

            document = {key: value for key, value in DEMO_PROJECT.items() if key != "slug"}
        elif file is not None:
            try:
                document = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read {file}: {exc}") from None
            if not isinstance(document, dict):
                raise CommandError(f"{file} must hold a JSON object.")
        try:
            project = project_create(workspace=target, name=name, document=document)
        except DocumentError as exc:
            details = "; ".join(f"{where}: {', '.join(msgs)}" for where, msgs in exc.details.items())
            raise CommandError(f"Invalid project document: {details}") from None
        except IntegrityError:
            raise CommandError(f"Workspace {workspace} already has a project with that slug.") from None
        self.stdout.write(project.id)
