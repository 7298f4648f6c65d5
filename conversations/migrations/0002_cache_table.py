"""Creates the database cache table that rate limits use when REDIS_URL is not set, so `migrate` is all a
deployment on the embedded default needs. Idempotent: createcachetable skips an existing table."""
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0001_initial")]
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
