"""Load benchmark: the v1 interact endpoint against a bare Django view, both served by one daphne on PostgreSQL.

    bash .ci/bench                      # starts a throwaway PostgreSQL + Redis, then runs this
    python -m tests.bench.run           # with DATABASE_URL (postgres) and optionally REDIS_URL already set

For each concurrency, 1,000 distinct users each do a `launch` then a text turn against interact, and the same
number of requests go to the bare view (read a row, update it, insert a row). It prints requests/s and p50/p99 of
both and the ratio, measured in the same run so that a noisy machine affects both alike."""
import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

TEXT = "I can't log in"
TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0


@dataclass
class Result:
    target: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def create_database(admin_url: str) -> str:
    """A fresh database next to the one DATABASE_URL names; returns its URL."""
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


def prepare(users: int, concurrencies: list[int]) -> tuple[str, str]:
    """Migrates, creates the demo project, a key, and the bare view's conversations; returns (project id, key)."""
    import django

    django.setup()
    from django.core.management import call_command

    from agents.demo import DEMO_PROJECT
    from agents.services import project_api_key_create, project_create, workspace_create
    from conversations.models import Conversation

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Django's logging config would print every request
    call_command("migrate", interactive=False, verbosity=0)
    workspace = workspace_create(name="Bench", slug="bench")
    project = project_create(workspace=workspace, name="Bench", document=DEMO_PROJECT)
    _row, key = project_api_key_create(project=project, name="bench")
    Conversation.objects.bulk_create(
        [Conversation(project=project, user_id=user_id("bare", c, n)) for c in [0, *concurrencies]
         for n in range(users)], batch_size=1000)
    return project.id, key


def user_id(target: str, concurrency: int, n: int) -> str:
    return f"{target}-c{concurrency}-u{n}"


async def drive(base_url: str, target: str, concurrency: int, users: int, project_id: str, key: str,
                label: int | None = None) -> Result:
    """`users` users, each sending a launch then a text turn, spread over `concurrency` workers. User ids are
    labelled with the concurrency (or `label`), so that every run starts fresh conversations."""
    result = Result(target, concurrency)
    headers = {"Authorization": f"Bearer {key}", "X-Project-Id": project_id}
    queue: asyncio.Queue = asyncio.Queue()
    for n in range(users):
        queue.put_nowait(user_id(target, concurrency if label is None else label, n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        async def worker():
            while not queue.empty():
                user = queue.get_nowait()
                for action in ({"type": "launch", "payload": None}, {"type": "text", "payload": TEXT}):
                    path = (f"/bench/bare/{user}" if target == "bare"
                            else f"/api/v1/conversations/{user}/interact")
                    started = time.perf_counter()
                    try:
                        response = await client.post(path, json={"action": action})
                    except httpx.HTTPError as exc:
                        result.errors.append(repr(exc))
                        continue
                    if response.status_code == 200:
                        result.latencies.append(time.perf_counter() - started)
                    else:
                        result.errors.append(f"{response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def report(results: list[Result]) -> bool:
    print(f"\n{'concurrency':>11} {'target':>9} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r.concurrency:>11} {r.target:>9} {r.requests:>9} {r.rate:>8.1f} {r.percentile(50):>8.1f} "
              f"{r.percentile(99):>8.1f} {len(r.errors):>7}")
    print()
    met = True
    by_level: dict[int, dict[str, Result]] = {}
    for r in results:
        by_level.setdefault(r.concurrency, {})[r.target] = r
    for level, pair in sorted(by_level.items()):
        ratio = pair["interact"].rate / pair["bare"].rate if pair["bare"].rate else 0.0
        p99 = pair["interact"].percentile(99)
        line = f"concurrency {level:>2}: interact/bare throughput {ratio:.2f}x, interact p99 {p99:.1f} ms"
        if level == max(by_level):
            ok = ratio >= TARGET_RATIO and p99 <= TARGET_P99_MS
            met = met and ok
            line += f"   target >= {TARGET_RATIO}x and p99 <= {TARGET_P99_MS:.0f} ms: {'met' if ok else 'NOT met'}"
        print(line)
    for r in results:
        for error in r.errors[:3]:
            print(f"  {r.target} c={r.concurrency} error: {error}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith(("postgres://", "postgresql://")):
        print("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://… or use `bash .ci/bench`.")
        return 2
    database_url = create_database(admin_url)
    os.environ.update({"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.bench.settings"})
    from tests.live import daphne_server

    try:
        project_id, key = prepare(args.users, args.concurrency)
        env = {"DJANGO_SETTINGS_MODULE": "tests.bench.settings", "DATABASE_URL": database_url,
               "CONDUET_API_RATE_PER_MINUTE": "1000000", "LOG_LEVEL": "WARNING"}
        print(f"daphne on PostgreSQL{' + Redis' if os.environ.get('REDIS_URL') else ''}; {args.users} users "
              f"per run, a launch and a text turn each")
        with daphne_server(env=env) as base_url:
            for target in ("bare", "interact"):  # warm-up (users labelled 0), not reported
                asyncio.run(drive(base_url, target, 4, min(50, args.users), project_id, key, label=0))
            results = []
            for level in args.concurrency:
                order = ("bare", "interact") if level % 2 else ("interact", "bare")
                for target in order:
                    results.append(asyncio.run(drive(base_url, target, level, args.users, project_id, key)))
                    print(f"  done: {target} at concurrency {level}", file=sys.stderr)
        return 0 if report(sorted(results, key=lambda r: (r.concurrency, r.target))) else 1
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(database_url)


if __name__ == "__main__":
    sys.exit(main())
