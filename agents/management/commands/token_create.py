from django.core.management.base import BaseCommand

from agents.management.commands._lookup import user_named
from agents.services import developer_token_create


class Command(BaseCommand):
    help = "Creates a developer token (cdt_acc_…) for a user and prints it once."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--name", default="")

    def handle(self, *args, user, name, **options):
        _row, key = developer_token_create(user=user_named(user), name=name)
        self.stdout.write(key)
