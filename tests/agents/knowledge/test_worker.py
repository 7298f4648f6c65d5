"""`manage.py worker` as a real process on the test database: killed (SIGKILL) in the middle of a document, it leaves
the document `processing` with no chunk; a new worker takes it up once the dead one's lease has run out and
finishes it."""
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.knowledge.services import document_create_url
from tests.conftest import server_env
from tests.live import ROOT, process_stop

PAGE = (b"<html><head><title>Shipping</title></head><body><main><h1>Shipping</h1><p>Parcels leave our warehouse "
        b"within two working days and arrive three to five days later. Tracking links are sent by email.</p>"
        b"</main></body></html>")


class SlowSite:
    """A page on 127.0.0.1 whose first request hangs (until released) and the next ones answer at once."""

    def __init__(self):
        self.requested = threading.Event()
        self.release = threading.Event()
        self.hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                site.hits += 1
                if site.hits == 1:
                    site.requested.set()
                    site.release.wait(30)
                    return  # no answer: the client is dead by now
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/shipping"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_site(settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    site = SlowSite()
    yield site
    site.close()


def worker_start(log_path, **env) -> subprocess.Popen:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CONDUET_DEVELOPMENT": "true",
                **server_env(**env)}
    log = open(log_path, "ab")  # noqa: SIM115 (the process holds it; closed with the test's tmp dir)
    return subprocess.Popen([sys.executable, "manage.py", "worker", "--no-reload", "--no-startup-delay",
                             "--interval", "0.1"], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    logs = log_path.read_text() if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{logs[-3000:]}")


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_document_leaves_it_processing_and_the_next_one_finishes_it(demo_project, slow_site,
                                                                                         tmp_path):
    log_path = tmp_path / "worker.log"
    document = document_create_url(project=demo_project, name="Shipping", url=slow_site.url, metadata={})

    first = worker_start(log_path, CONDUET_KB_LEASE_SECONDS="2")
    try:
        assert slow_site.requested.wait(30), log_path.read_text()  # it took the document and is fetching it
        document.refresh_from_db()
        assert (document.status, document.attempts) == ("processing", 1) and document.lease_until is not None
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        first.wait()

    document.refresh_from_db()
    assert document.status == "processing"
    assert not KnowledgeChunk.objects.filter(document=document).exists()

    second = worker_start(log_path, CONDUET_KB_LEASE_SECONDS="2")
    try:
        def finished():
            document.refresh_from_db()
            return document.status != "processing"

        wait_for(finished, 60, "the second worker to finish the document", log_path)
    finally:
        process_stop(second)

    assert (document.status, document.error) == ("ready", ""), document.error
    assert document.attempts == 2
    chunks = KnowledgeChunk.objects.filter(document=document)
    assert document.chunk_count == chunks.count() >= 1
    assert "two working days" in chunks.first().content
    assert KnowledgeDocument.objects.get(pk=document.pk).lease_until is None
