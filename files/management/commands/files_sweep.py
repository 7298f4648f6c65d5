"""`manage.py files_sweep [--older-than SECONDS]`: removes now what killed processes left of uploads — temporary
files under FILE_UPLOAD_TEMP_DIR, stored bytes under conversations/ and knowledge/ that no row names, the
directories of deleted conversations (files/sweep.py) — and prints each. `manage.py worker` does the same every
CONDUET_FILES_SWEEP_INTERVAL_SECONDS; this is for operators and cron."""
from django.conf import settings
from django.core.management.base import BaseCommand

from files.sweep import files_sweep


class Command(BaseCommand):
    help = "Removes leftover upload temporary files and stored bytes that no file, data frame or document names."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=None, metavar="SECONDS",
                            help="only what was last modified this long ago (default "
                                 "CONDUET_FILES_SWEEP_AGE_SECONDS: uploads in flight are younger)")

    def handle(self, *args, older_than=None, **options):
        if older_than is None:
            older_than = settings.CONDUET_FILES_SWEEP_AGE_SECONDS
        removed = files_sweep(older_than=max(older_than, 0.0))
        for name in removed["storage"]:
            self.stdout.write(f"storage: {name}")
        for path in removed["temporary"]:
            self.stdout.write(f"temporary: {path}")
        self.stdout.write(f"Removed {len(removed['storage'])} stored names and {len(removed['temporary'])} "
                          f"temporary entries older than {older_than:g} s.")
