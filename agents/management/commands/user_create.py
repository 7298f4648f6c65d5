from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents.management.commands._lookup import workspace_named
from agents.models import Membership
from agents.services import membership_add, user_create


class Command(BaseCommand):
    help = "Creates a user, optionally a member of a workspace; prints the password when it was generated."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="generated and printed when omitted")
        parser.add_argument("--workspace", help="slug of a workspace to join")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.MEMBER)
        parser.add_argument("--superuser", action="store_true", help="may use the admin")

    def handle(self, *args, username, email, password, workspace, role, superuser, **options):
        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"A user named {username!r} already exists.")
        target = workspace_named(workspace) if workspace else None
        with transaction.atomic():
            user, used_password = user_create(username=username, email=email, password=password, superuser=superuser)
            if target is not None:
                membership_add(workspace=target, user=user, role=role)
        self.stdout.write(f"User {username}" + (f" ({role} of {target.slug})" if target else ""))
        if password is None:
            self.stdout.write(f"Password: {used_password}")
