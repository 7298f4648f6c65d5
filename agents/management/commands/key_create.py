from django.core.management.base import BaseCommand

from agents.management.commands._lookup import project_with_id
from agents.models import ProjectApiKey
from agents.services import project_api_key_create


class Command(BaseCommand):
    help = "Creates a project key (cdt_…) and prints it once."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project id")
        parser.add_argument("--scope", choices=ProjectApiKey.Scope.values, default=ProjectApiKey.Scope.SERVER)
        parser.add_argument("--name", default="")

    def handle(self, *args, project, scope, name, **options):
        _row, key = project_api_key_create(project=project_with_id(project), name=name, scope=scope)
        self.stdout.write(key)
