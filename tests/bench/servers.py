"""What the benchmark runs against: a fresh PostgreSQL database holding the demo project, and daphne processes
behind one port (one process, or several, as a load balancer would put them)."""
import copy
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
RATE_PER_MINUTE = 100_000  # per user (and per key): far above what a run sends, and what validation allows
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def create_database(admin_url: str) -> str:
    """A fresh database next to the one `admin_url` names; returns its URL."""
    import psycopg

    name = f"conduet_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(admin_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def prepare(document: dict | None = None) -> str:
    """Migrates the database Django is configured with, creates the demo project (or the project `document`
    describes; its rate limit out of the way either way), publishes it, and returns a new server key for it."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from agents.demo import DEMO_PROJECT
    from agents.services import project_api_key_create, project_create, version_publish, workspace_create

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Django's logging config would print every request
    call_command("migrate", interactive=False, verbosity=0)
    document = copy.deepcopy(DEMO_PROJECT if document is None else document)
    document.setdefault("settings", {})["rateLimit"] = {"perMinute": RATE_PER_MINUTE}
    workspace = workspace_create(name="Bench", slug="bench")
    project = project_create(workspace=workspace, name=document.get("name", "Bench"), document=document)
    version_publish(project=project, name="bench")
    _row, key = project_api_key_create(project=project, name="bench")
    connections.close_all()
    return key


def server_env(database_url: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
        "CONDUET_DEVELOPMENT": "true",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "CONDUET_API_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
        "CONDUET_INTERACT_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime: fields 14 and 15 of stat(5)


@dataclass
class ServerGroup:
    base_url: str
    processes: list[subprocess.Popen]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids}

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"daphne {process.pid} exited with {process.returncode}")


def _listening_socket(port: int = 0, *, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _wait_serving(group: ServerGroup, timeout: float) -> None:
    """Until every process has answered once (new connections land on the processes in turn or at random); a
    process that never answers within `timeout` is an error."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while set(group.pids) - seen:
        group.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"daphne processes {sorted(set(group.pids) - seen)} did not answer in {timeout:.0f} s")
        try:
            with httpx.Client(timeout=2) as client:  # a new connection each time
                response = client.get(f"{group.base_url}/bench/pid")
            if response.status_code == 200:
                seen.add(int(response.text))
        except httpx.HTTPError:
            pass
        time.sleep(0.05 if seen else 0.1)


@contextmanager
def daphne_group(*, env: dict[str, str], count: int = 1, shared_socket: bool = False, timeout: float = 60.0,
                 log_dir: Path | None = None):
    """`count` daphne processes behind one loopback port, each adopting a listening socket the runner binds and
    passes down (`daphne --fd`). By default each process gets its own socket on that port (SO_REUSEPORT: the kernel
    spreads new connections among them); with `shared_socket` they all adopt one socket and race to accept, which
    lets one process take a burst of connections whole. Yields a ServerGroup once each process has answered, and
    stops the processes on exit."""
    first = _listening_socket(reuse_port=count > 1 and not shared_socket)
    port = first.getsockname()[1]
    if count == 1 or shared_socket:
        sockets = [first] * count
    else:
        sockets = [first, *(_listening_socket(port, reuse_port=True) for _ in range(count - 1))]
    full_env = {**os.environ, **env}
    processes: list[subprocess.Popen] = []
    with ExitStack() as stack:
        try:
            for n, sock in enumerate(sockets):
                log = (stack.enter_context(open(log_dir / f"daphne-{count}-{n}.log", "ab")) if log_dir
                       else subprocess.DEVNULL)
                command = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), "-v", "0",
                           "config.asgi:application"]
                processes.append(subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log,
                                                  stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),)))
            for sock in sockets:
                sock.close()  # the processes hold their copies
            group = ServerGroup(f"http://127.0.0.1:{port}", processes)
            _wait_serving(group, timeout)
            yield group
        finally:
            for sock in sockets:
                sock.close()
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def bench_main(run, args, *, prefix: str, command: str) -> int:
    """What a benchmark does around `run(args, database_url, log_dir)`: a throwaway database on the server of
    DATABASE_URL, a log directory (kept when the run failed, or when `--log-dir` named it), and the clean-up."""
    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith(("postgres://", "postgresql://")):
        print(f"The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://… or use `{command}`.")
        return 2
    database_url = create_database(admin_url)
    os.environ.update({"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.bench.settings"})
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix=prefix))
    log_dir.mkdir(parents=True, exist_ok=True)
    code = 1
    try:
        code = run(args, database_url, log_dir)
        return code
    except Exception:
        traceback.print_exc()
        print(f"\nThe benchmark failed; logs: {log_dir}")
        return code
    finally:
        if code == 0 and not args.log_dir:
            shutil.rmtree(log_dir, ignore_errors=True)
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_database(database_url)
