"""Load generators: wrk with tests/bench/interact.lua, or a Python (httpx) fallback that sends the same dialog when
wrk is not installed. Both hold `concurrency` keep-alive connections busy for a fixed duration."""
import asyncio
import itertools
import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LUA_SCRIPT = "tests/bench/interact.lua"  # relative to ROOT, where wrk runs, so that the printed command is short
BODIES = ({"action": {"type": "launch", "payload": None}}, {"action": {"type": "text", "payload": "I can't log in"}})
DONE_MARK = "data: [DONE]"


@dataclass(frozen=True)
class Target:
    name: str
    path: str  # `{user}` stands for the user id
    stream: bool = False


TARGETS = {
    "baseline": Target("baseline", "/bench/baseline/{user}"),
    "interact": Target("interact", "/api/v1/conversations/{user}/interact"),
    "stream": Target("stream", "/api/v1/conversations/{user}/interact/stream", stream=True),
}


@dataclass
class Load:
    """What one measurement sends: which target, how many connections, for how long, as which users."""
    target: Target
    concurrency: int
    duration: int
    label: str  # prefixes the user ids, so that each measurement starts fresh conversations
    key: str
    users: int | None = None  # users a wrk thread (or the Python driver) rotates over; None: 4 per connection
    wrk_threads: int = 1

    @property
    def threads(self) -> int:
        return max(1, min(self.wrk_threads, self.concurrency))

    def rotation(self, threads: int) -> int:
        """Users per load thread: a user's text turn comes a whole rotation after its launch, so the rotation must
        be long enough that the launch has been answered (else the lease makes the turn wait), and short enough
        that dialogs get to their second turn within the measurement."""
        return self.users or max(16, 4 * -(-self.concurrency // threads))


@dataclass
class Result:
    target: str
    concurrency: int
    processes: int = 1
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    non2xx: int = 0
    no_done: int = 0  # stream responses without `data: [DONE]`
    socket_errors: int = 0  # connect, read, write errors and timeouts
    statuses: dict[str, int] = field(default_factory=dict)  # error responses by status ("no_done" for streams)
    cpu_seconds: dict[int, float] = field(default_factory=dict)  # per daphne process, during the measurement
    samples: list[str] = field(default_factory=list)  # a few error descriptions

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.no_done + self.socket_errors

    @property
    def error_fraction(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    @property
    def cpu_ms_per_request(self) -> float:
        return sum(self.cpu_seconds.values()) * 1000 / self.requests if self.requests else float("nan")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_command(base_url: str, load: Load) -> list[str]:
    return ["wrk", f"-t{load.threads}", f"-c{load.concurrency}", f"-d{load.duration}s", "--timeout", "10s",
            "-s", LUA_SCRIPT, base_url, "--", load.target.path, load.key, load.label,
            "stream" if load.target.stream else "json", str(load.rotation(load.threads))]


def printable(command: list[str], key: str) -> str:
    return shlex.join(command).replace(key, "$KEY")


def run_wrk(base_url: str, load: Load) -> Result:
    command = wrk_command(base_url, load)
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace",
                               timeout=load.duration + 60)
    line = next((line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip() or completed.stdout}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return Result(
        target=load.target.name, concurrency=load.concurrency, requests=data["requests"],
        seconds=data["duration_us"] / 1e6, p50_ms=data["p50_ms"], p99_ms=data["p99_ms"], non2xx=data["non2xx"],
        no_done=data["no_done"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        statuses=data["statuses"], samples=[data["sample"]] if data["sample"] else [],
    )


def dialog(label: str, users: int):
    """The same sequence as interact.lua: rotate over `users` users, each a launch then a text turn."""
    for n in itertools.count():
        slot, rotation = n % users, n // users
        yield f"{label}-t1-b{rotation // 2}-u{slot}", BODIES[rotation % 2]


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def _count(result: Result, status: str, description: str) -> None:
    result.statuses[status] = result.statuses.get(status, 0) + 1
    result.samples.append(description)


async def _drive(base_url: str, load: Load) -> Result:
    result = Result(load.target.name, load.concurrency)
    latencies: list[float] = []
    requests = dialog(load.label, load.rotation(1))
    limits = httpx.Limits(max_connections=load.concurrency, max_keepalive_connections=load.concurrency)
    headers = {"Authorization": f"Bearer {load.key}"}

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=10) as client:
        deadline = time.perf_counter() + load.duration

        async def worker():
            while time.perf_counter() < deadline:
                user, body = next(requests)
                started = time.perf_counter()
                try:
                    response = await client.post(load.target.path.format(user=user), json=body)
                except httpx.HTTPError as exc:
                    result.socket_errors += 1
                    _count(result, type(exc).__name__, repr(exc))
                    continue
                latencies.append(time.perf_counter() - started)
                if not 200 <= response.status_code < 300:
                    result.non2xx += 1
                    _count(result, str(response.status_code), f"{response.status_code} {response.text[:300]}")
                elif load.target.stream and DONE_MARK not in response.text:
                    result.no_done += 1
                    _count(result, "no_done", f"no [DONE] in a stream ending with {response.text[-200:]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(load.concurrency)))
        result.seconds = time.perf_counter() - started
    result.requests = len(latencies) + result.socket_errors
    latencies.sort()
    result.p50_ms, result.p99_ms = percentile(latencies, 50), percentile(latencies, 99)
    del result.samples[1:]
    return result


def run_python(base_url: str, load: Load) -> Result:
    return asyncio.run(_drive(base_url, load))
