"""PostgreSQL restarting under a running server: no request after the restart fails on a stale pooled connection,
and a turn that was waiting on a tool while the database restarted still stores its reply. The test runs its own
throwaway PostgreSQL cluster (the Debian server binaries that .ci/run installs), since it restarts it."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import pytest

from tests.live import ROOT, daphne_process, free_port
from tests.turns import slow_document

pytestmark = pytest.mark.server

LAUNCH = {"action": {"type": "launch", "payload": None}}


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("PostgreSQL server binaries are needed (.ci/run installs them)")
    return os.path.dirname(os.path.realpath(initdb))


class Cluster:
    def __init__(self):
        self.bindir = _bindir()
        self.root = tempfile.mkdtemp(prefix="conduet-pg-")
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        os.mkdir(self.data)
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            shutil.chown(self.data, "postgres")
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/conduet"

    def run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bindir, tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def pg_ctl(self, *args: str) -> None:
        self.run("pg_ctl", "-D", self.data, "-w", "-t", "30", "-l", os.path.join(self.data, "log"), *args,
                 "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off")

    def start(self) -> None:
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.pg_ctl("start")
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "conduet")

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster():
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.stop()


SETUP = """
import django, json, sys
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from agents.services import demo_setup, project_api_key_create, project_create
from agents.models import Workspace
demo = demo_setup()
slow = project_create(workspace=Workspace.objects.get(), name="Slow", document=json.loads(sys.argv[1]))
print(demo.key, project_api_key_create(project=slow, name="server")[1])
"""


def test_requests_after_a_postgresql_restart_never_fail_on_stale_connections(cluster, tool_server, tmp_path):
    env = {**os.environ, "DATABASE_URL": cluster.url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("REDIS_URL", None)
    keys = subprocess.run([sys.executable, "-c", SETUP, json.dumps(slow_document(tool_server.url, seconds=3))],
                          cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120).stdout.split()
    demo_key, slow_key = keys[-2], keys[-1]
    server_env = {"DATABASE_URL": cluster.url, "CONDUET_DB_POOL_MIN": "4", "CONDUET_OUTBOUND_ALLOWLIST": "127.0.0.1",
                  "LOG_LEVEL": "WARNING", "REDIS_URL": ""}
    with daphne_process(env=server_env, log_path=tmp_path / "daphne.log") as (base_url, _process):
        headers = {"Authorization": f"Bearer {demo_key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            warm = [http.post(f"/api/v1/conversations/u{i}/interact", json=LAUNCH).status_code for i in range(8)]
            slow_result: dict = {}

            def slow_turn():
                with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {slow_key}"},
                                  timeout=30) as slow:
                    response = slow.post("/api/v1/conversations/patient/interact", json=LAUNCH)
                    slow_result.update(status=response.status_code, body=response.json())

            waiting = threading.Thread(target=slow_turn)
            waiting.start()
            time.sleep(0.5)  # the slow turn is inside its 3 s tool call
            cluster.pg_ctl("restart", "-m", "fast")
            after = [http.post(f"/api/v1/conversations/u{i}/interact", json=LAUNCH).status_code for i in range(12)]
            waiting.join()
            state = http.get("/api/v1/conversations/u1/state")
    assert warm == [200] * 8
    assert after == [200] * 12  # the pool checks each connection it hands out
    assert state.status_code == 200 and state.json()["turn"] == 2
    assert slow_result["status"] == 200
    assert [t["payload"].get("message") for t in slow_result["body"]] == ["Looking it up…", "Done after 3.0 s."]
