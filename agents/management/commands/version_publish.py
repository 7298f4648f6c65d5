from django.core.management.base import BaseCommand

from agents.management.commands._lookup import project_with_id
from agents.services import version_publish


class Command(BaseCommand):
    help = "Freezes a project's development document into a new production version."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project id")
        parser.add_argument("--name", default="")

    def handle(self, *args, project, name, **options):
        version = version_publish(project=project_with_id(project), name=name)
        self.stdout.write(version.id)
