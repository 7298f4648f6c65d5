"""Finding the rows a command names, with a CommandError that says what was not found."""
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from agents.models import Project, Workspace


def workspace_named(slug: str) -> Workspace:
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise CommandError(f"No workspace with the slug {slug!r}.")
    return workspace


def user_named(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


def project_with_id(project_id: str) -> Project:
    project = Project.objects.filter(id=project_id).first()
    if project is None:
        raise CommandError(f"No project with the id {project_id!r}.")
    return project
