from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from agents.management.commands._lookup import user_named
from agents.services import workspace_create


class Command(BaseCommand):
    help = "Creates a workspace (the v2 API's tenant), optionally with an owner."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")
        parser.add_argument("--owner", help="username of the owner")

    def handle(self, *args, name, slug, owner, **options):
        owner_user = user_named(owner) if owner else None
        try:
            workspace = workspace_create(name=name, slug=slug, owner=owner_user)
        except IntegrityError:
            raise CommandError(f"A workspace with the slug {slug or name!r} already exists.") from None
        self.stdout.write(f"Workspace {workspace.slug} ({workspace.id})")
