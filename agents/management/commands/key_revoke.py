"""`key_revoke --key <id or prefix>`: revokes a project key or a developer token (from then on it is 401). A key is
named by its id (`key_…`, `tok_…`) or by its start as the listings show it (`cdt_Ab12Cd34`, `cdt_acc_Ab12Cd34`;
the bare eight characters too, the key itself also works): the digest, never the key, is stored."""
from django.core.management.base import BaseCommand, CommandError

from agents.ids import (
    DEVELOPER_TOKEN_PREFIX,
    KEY_SECRET_LENGTH,
    LOOKUP_PREFIX_LENGTH,
    PROJECT_KEY_PREFIX,
    key_digest,
)
from agents.models import DeveloperToken, ProjectApiKey
from agents.services import key_revoke


def keys_named(name: str) -> list:
    """The keys `name` may mean: by id, else by lookup prefix (of the kind its `cdt_`/`cdt_acc_` start says)."""
    for model in (ProjectApiKey, DeveloperToken):
        found = model.objects.filter(pk=name).first()
        if found is not None:
            return [found]
    if name.startswith(DEVELOPER_TOKEN_PREFIX):
        models, prefix = [DeveloperToken], name[len(DEVELOPER_TOKEN_PREFIX):]
    elif name.startswith(PROJECT_KEY_PREFIX):
        models, prefix = [ProjectApiKey], name[len(PROJECT_KEY_PREFIX):]
    else:
        models, prefix = [ProjectApiKey, DeveloperToken], name
    if len(prefix) == KEY_SECRET_LENGTH:  # the whole key: its digest says which one
        return [key for model in models for key in model.objects.filter(digest=key_digest(name))]
    prefix = prefix.rstrip("…").removesuffix("...")
    if len(prefix) != LOOKUP_PREFIX_LENGTH:
        return []
    return [key for model in models for key in model.objects.filter(prefix=prefix)]


class Command(BaseCommand):
    help = "Revokes a project key (cdt_…) or a developer token (cdt_acc_…), named by its id or its prefix."

    def add_arguments(self, parser):
        parser.add_argument("--key", required=True, help="key_…/tok_… id, or the key's start (cdt_Ab12Cd34)")

    def handle(self, *args, key, **options):
        found = keys_named(key.strip())
        if not found:
            raise CommandError(f"No key with the id or prefix {key!r}.")
        if len(found) > 1:
            raise CommandError(f"{key!r} names {len(found)} keys ({', '.join(k.pk for k in found)}); "
                               "give the id instead.")
        row = found[0]
        was_revoked = row.revoked_at is not None
        key_revoke(key=row)
        self.stdout.write(f"{row.pk} {'was already revoked' if was_revoked else 'revoked'} ({row}).")
