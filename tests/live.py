"""A real daphne process on 127.0.0.1 for tests and the benchmark that need the server as clients see it."""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent


def database_url(settings_dict: dict) -> str:
    """DATABASE_URL for a Django connection's settings (the test database included)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        auth = quote(settings_dict.get("USER") or "")
        if settings_dict.get("PASSWORD"):
            auth += ":" + quote(settings_dict["PASSWORD"])
        host = settings_dict.get("HOST") or "localhost"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"No DATABASE_URL for {engine}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def daphne_server(*, env: dict[str, str], timeout: float = 30.0, log_path: Path | None = None):
    """Starts `daphne config.asgi:application` with `env` on a free loopback port, yields its base URL once
    /healthz answers, and stops it on exit."""
    with daphne_process(env=env, timeout=timeout, log_path=log_path) as (base_url, _process):
        yield base_url


@contextmanager
def daphne_process(*, env: dict[str, str], timeout: float = 30.0, log_path: Path | None = None):
    """`daphne_server`, yielding (base URL, the subprocess) for tests that kill it."""
    port = free_port()
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CONDUET_DEVELOPMENT": "true", **env}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"daphne exited with {process.returncode} before it answered")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("daphne did not answer /healthz in time")
            time.sleep(0.1)
        yield base_url, process
    finally:
        process_stop(process)
        if log_path:
            log.close()


def process_stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, and SIGKILL if the process has not ended `timeout` s later."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
