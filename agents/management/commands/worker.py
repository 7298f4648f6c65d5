"""`manage.py worker`: django-tasks-db's `db_worker` (the knowledge base's documents, and any later task) plus the
knowledge base's recovery: at start and every CONDUET_KB_LEASE_SECONDS / 2, documents a dead worker left
`processing` (their lease ran out) are enqueued again. django-tasks-db never re-runs a task whose worker died (its
result stays RUNNING), so without this a killed worker would leave its document processing for ever. Also, every
CONDUET_FILES_SWEEP_INTERVAL_SECONDS, the files sweep (files/sweep.py): what killed processes left in the upload
directory and stored bytes no row names."""
import logging
import os
import signal
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from agents.knowledge.services import documents_recover

log = logging.getLogger("conduet.knowledge")


def _recover_once() -> None:
    try:
        documents_recover()
    except Exception:  # a locked SQLite, a database restarting: try again at the next beat
        log.warning("Recovering knowledge documents failed; trying again later", exc_info=True)


def _recover_forever(stop: threading.Event) -> None:
    interval = max(settings.CONDUET_KB_LEASE_SECONDS / 2, 0.5)
    while not stop.wait(interval):
        close_old_connections()
        _recover_once()
    connection.close()


def _sweep_forever(stop: threading.Event) -> None:
    """The files sweep at start and every CONDUET_FILES_SWEEP_INTERVAL_SECONDS, in its own thread: a sweep of a
    large storage may take a while, and the knowledge base's recovery must not wait for it."""
    from files.sweep import files_sweep

    interval = settings.CONDUET_FILES_SWEEP_INTERVAL_SECONDS
    while True:
        close_old_connections()
        try:
            removed = files_sweep()
            if removed["storage"] or removed["temporary"]:
                log.info("Files sweep removed %d stored names and %d temporary entries", len(removed["storage"]),
                         len(removed["temporary"]))
        except Exception:
            log.warning("The files sweep failed; trying again later", exc_info=True)
        if stop.wait(interval):
            break
    connection.close()


def _stop_with(parent_pid: int) -> None:
    """Stops this worker (gracefully: the task in hand is finished) once the process that started it has ended."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    log.info("The worker's parent process ended; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


class Command(DbWorkerCommand):
    help = ("Runs queued tasks (knowledge-base documents), recovers documents whose worker died, and sweeps what "
            "killed processes left of uploads.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--stop-with-parent", action="store_true",
                            help="Stop when the parent process ends (rundemo's server).")

    def handle(self, *args, batch: bool = False, stop_with_parent: bool = False, **options):
        if stop_with_parent:
            threading.Thread(target=_stop_with, args=(os.getppid(),), name="parent-watch", daemon=True).start()
        # First in this thread: a --batch run (tests, one-off) then processes what was recovered, too.
        _recover_once()
        if not batch:
            stop = threading.Event()
            threading.Thread(target=_recover_forever, args=(stop,), name="kb-recover", daemon=True).start()
            if settings.CONDUET_FILES_SWEEP_INTERVAL_SECONDS > 0:
                threading.Thread(target=_sweep_forever, args=(stop,), name="files-sweep", daemon=True).start()
        return super().handle(*args, batch=batch, **options)
