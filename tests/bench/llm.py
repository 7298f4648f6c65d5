"""LLM streaming benchmark: an `agentic` project (instructions, no tools) whose text turns stream a model's reply
over `POST /api/v1/conversations/{userId}/interact/stream`, one daphne process on PostgreSQL (and Redis when
REDIS_URL is set), the model being the fake OpenAI-compatible server of tests/fakes/llm_server.py.

    bash .ci/bench llm                          # starts a throwaway PostgreSQL + Redis, then runs this
    bash .ci/bench llm --part first-token       # only part 1; `--part streams` only part 2
    python -m tests.bench.llm                   # with DATABASE_URL (postgres) and optionally REDIS_URL already set

1. First token. The fake runs in this process (`LlmServer` in a background thread), so that its record of when
   it wrote a request's first content chunk (`first_content_at`) and the client's clock are the same clock
   (time.time()); the standalone fake records nothing (`record=False`), so its write times cannot be read. It
   answers every request with `--tokens` one-token chunks `--pace` s apart after a first-token delay
   `--first-token-delay`. For `--samples` streams one after the other, then `--concurrent-samples` streams
   over `--concurrency` connections, it measures
     added  = (client time of the first `text` trace after `completion-start`) - (the fake's write of that token)
     TTFT   = (client time of that trace) - (client time the request was sent)
   Each request is a new user with a unique message, by which its request at the fake is found. The in-run
   baseline is the same measurement of a client (the openai SDK, as the server uses) talking to the fake directly;
   the table gives the difference of the two and the TTFT ratio.
2. Open streams. The fake runs as its own process (`python -m tests.fakes.llm_server`), answering `--stream-seconds`
   of one-token chunks `--stream-pace` s apart (a low aggregate chunk rate: the fake writes some 15-20 thousand
   chunks a second). `--streams` SSE streams, each a different user, are opened by one httpx.AsyncClient in
   batches of `--batch`, one every `--batch-interval` s at most and while fewer than `--max-pending` streams wait
   for their first byte (daphne sends the response headers with the first event, which comes with the model's
   first token). While they run it samples: the client connections to daphne, the streams open (200 received, not
   ended), the streams receiving tokens (first `text` trace received, not ended), the daphne process's connections
   to the model (ESTABLISHED sockets to the fake's port, /proc/net/tcp), its RSS and threads (/proc/<pid>/status;
   VmHWM at the end) and its CPU. Errors: non-200 answers, `error` traces, streams ending without `data: [DONE]` or
   with fewer text traces than the fake sent (a turn stopped early), and connection failures or timeouts (no byte
   for `--stream-timeout` s, the first one included). `--profile FILE` records daphne with py-spy meanwhile.

The server's settings for part 2 (a larger pool and waits, so that 2,000 lease acquisitions queue instead of
failing) are in STREAMS_ENV; `--server-env NAME=VALUE` adds or overrides one (e.g. to try a fix's setting). The
open-files limit of this process is raised to its hard limit, and daphne and the fake inherit it.

It is a report, like tests/bench/run.py: figures and ratios against the targets, exit code 0 whether or not the
targets are met (part 2's errors are one of its figures), 1 only when something failed: a server died, a part could
not run, or more than 1% of part 1's streams failed (its figures would mean nothing)."""
import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.bench.servers import (
    ROOT,
    bench_main,
    cpu_seconds,
    daphne_group,
    prepare,
    server_env,
)
from tests.live import process_stop

ADDED_P50_MS = 5.0  # target: what the server adds to the first token, p50
STREAMS_TARGET, RSS_TARGET_MIB = 2000, 1024  # target: 2,000 open streams under 1 GiB with no error
STREAM_PATH = "/api/v1/conversations/{user}/interact/stream"
MODEL = "fake-model"
PROJECT = {
    "name": "LLM bench",
    "framework": "agentic",
    "instructions": "You are a helpful assistant. Answer briefly.",
    "model": {"name": MODEL},
    "settings": {"turnTimeoutSeconds": 900},  # part 2's turns run for minutes
}
# Part 2's server settings: 2,000 turns start within seconds of each other and each takes the lease (one statement
# on the async pool) and opens a model stream; their renewals and stores come back in waves.
STREAMS_ENV = {
    "CONDUET_DB_POOL_MAX": "40",
    "CONDUET_DB_POOL_TIMEOUT": "60",
    "CONDUET_TURN_WAIT_SECONDS": "60",
}
FIRST_TOKEN_TIMEOUT = 60.0  # seconds a part-1 stream may take in all
MAX_FIRST_TOKEN_ERRORS = 0.01


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def mib(kib: int | None) -> float:
    return kib / 1024 if kib is not None else float("nan")


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A number of /proc/<pid>/status: a `kB` field (VmRSS, VmHWM), or Threads."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def established_to(port: int) -> int:
    """ESTABLISHED TCP connections on this host whose remote end is `port` on loopback: the clients' side of the
    connections to a server on that port."""
    wanted = f":{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines, None)
            for line in lines:
                parts = line.split(None, 4)
                if len(parts) > 3 and parts[3] == "01" and parts[2].endswith(wanted):
                    count += 1
    return count


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_problems(log_dir: Path) -> list[str]:
    """What the daphne processes logged (LOG_LEVEL=WARNING: warnings, errors and their exceptions), each kind of
    line counted once ids and addresses are blanked out; the most frequent first."""
    counts: dict[str, int] = {}
    for path in sorted(log_dir.glob("daphne-*.log")):
        with open(path, errors="replace") as log:
            for line in log:
                if not line.strip() or line[0].isspace() or line.startswith(("Traceback", "The above exception",
                                                                                 "During handling")):
                    continue
                key = re.sub(r"\b(turn|msg|conv)_[0-9a-f]+|0x[0-9a-f]+|Task-\d+|u\d+\b", "…", line.strip())[:110]
                counts[key] = counts.get(key, 0) + 1
    return [f"{n:>6} x {line}" for line, n in sorted(counts.items(), key=lambda item: -item[1])]


# --- part 1: the first token


@dataclass
class FirstTokens:
    path: str  # "direct" or "conduet"
    mode: str  # "sequential" or "c=<n>"
    added_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, description: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(description)


def sse_data(line: str):
    """The decoded data of an SSE `data:` line, or None for other lines (ids, pings, blank lines)."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    return data if data == "[DONE]" else json.loads(data)


async def conduet_first_token(client: httpx.AsyncClient, user: str, text: str) -> tuple[float, float, str | None]:
    """(sent, first text, problem) of one turn streamed by the server, read to its end."""
    sent = time.time()
    first, started, done, problem = math.nan, False, False, None
    async with client.stream("POST", STREAM_PATH.format(user=user),
                             json={"action": {"type": "text", "payload": text}}) as response:
        if response.status_code != 200:
            return sent, first, f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
        async for line in response.aiter_lines():
            data = sse_data(line)
            if data is None:
                continue
            if data == "[DONE]":
                done = True
                break
            kind = data.get("type")
            if kind == "completion-start":
                started = True
            elif kind == "text" and started and math.isnan(first):
                first = time.time()
            elif kind == "error":
                problem = problem or f"error trace {data.get('payload')}"
    if not done:
        problem = problem or "stream ended without [DONE]"
    elif math.isnan(first):
        problem = problem or "no text trace after completion-start"
    return sent, first, problem


async def direct_first_token(client, user: str, text: str) -> tuple[float, float, str | None]:
    """(sent, first content, problem) of one streamed completion asked of the fake directly (the openai SDK)."""
    sent = time.time()
    first = math.nan
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": PROJECT["instructions"]},
                               {"role": "user", "content": text}],
        stream=True, stream_options={"include_usage": True})
    async with stream:
        async for chunk in stream:
            if math.isnan(first) and chunk.choices and chunk.choices[0].delta.content:
                first = time.time()
    return sent, first, None if not math.isnan(first) else "no content"


def _request_texts(fake) -> dict[str, object]:
    """The fake's requests by the text of their last user message."""
    found = {}
    for request in list(fake.requests):
        said = next((m.get("content") for m in reversed(request.messages)
                     if isinstance(m, dict) and m.get("role") == "user"), None)
        if isinstance(said, str):
            found[said] = request
    return found


async def first_tokens(fake, path: str, label: str, samples: int, concurrency: int, *, base_url: str = "",
                       key: str = "") -> FirstTokens:
    import openai

    result = FirstTokens(path, "sequential" if concurrency == 1 else f"c={concurrency}")
    runs: list[tuple[str, float, float]] = []  # text, sent, first
    counter = iter(range(samples))
    async with contextlib.AsyncExitStack() as stack:
        if path == "conduet":
            client = await stack.enter_async_context(httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=FIRST_TOKEN_TIMEOUT,
                limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)))
            once = conduet_first_token
        else:
            client = openai.AsyncOpenAI(base_url=fake.url, api_key="sk-fake", max_retries=0,
                                        timeout=FIRST_TOKEN_TIMEOUT)
            stack.push_async_callback(client.close)
            once = direct_first_token

        async def worker():
            for n in counter:
                user, text = f"{label}-u{n}", f"first token probe {label} {n}"
                try:
                    sent, first, problem = await once(client, user, text)
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    result.error(f"{type(exc).__name__}: {exc}")
                    continue
                if problem:
                    result.error(problem)
                else:
                    runs.append((text, sent, first))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    requests = _request_texts(fake)
    for text, sent, first in runs:
        request = requests.get(text)
        if request is None or request.first_content_at is None:
            result.error(f"the fake has no first chunk for {text!r}")
            continue
        result.added_ms.append((first - request.first_content_at) * 1000)
        result.ttft_ms.append((first - sent) * 1000)
    return result


def part_first_token(args, env: dict[str, str], key: str, log_dir: Path) -> list[FirstTokens]:
    from tests.fakes.llm_server import LlmServer, Reply

    results: list[FirstTokens] = []
    print(f"\nPart 1: first token. Fake model in this process: {args.tokens} tokens, {args.pace * 1000:.0f} ms apart, "
          f"first after {args.first_token_delay * 1000:.0f} ms", flush=True)
    with LlmServer(default=Reply.tokens(args.tokens), pace=args.pace, first_token_delay=args.first_token_delay) as fake:
        with daphne_group(env={**env, **fake.env(MODEL)}, count=1, log_dir=log_dir) as single:
            print(f"One daphne process (pid {single.pids[0]}) on {single.base_url}; model {fake.url}", flush=True)
            if args.warmup:
                for path in ("direct", "conduet"):
                    asyncio.run(first_tokens(fake, path, f"warm-{path}", args.warmup, min(args.concurrency, 4),
                                             base_url=single.base_url, key=key))
            modes = [("seq", args.samples, 1)]
            if args.concurrency > 1:
                modes.append((f"c{args.concurrency}", args.concurrent_samples, args.concurrency))
            for label, samples, concurrency in modes:
                for path in ("direct", "conduet"):
                    single.check_alive()
                    started = time.perf_counter()
                    result = asyncio.run(first_tokens(fake, path, f"{label}-{path}", samples, concurrency,
                                                      base_url=single.base_url, key=key))
                    single.check_alive()
                    results.append(result)
                    print(f"  {path:<8} {result.mode:<10} {len(result.added_ms):>4} streams in "
                          f"{time.perf_counter() - started:5.1f} s: added p50 {percentile(result.added_ms, 50):6.2f}"
                          f" ms p99 {percentile(result.added_ms, 99):6.2f} ms; TTFT p50 "
                          f"{percentile(result.ttft_ms, 50):7.2f} ms; errors {result.errors}", flush=True)
                    for sample in result.samples:
                        print(f"    error: {sample}")
    return results


# --- part 2: open streams


@dataclass
class Streams:
    requested: int = 0
    ok_headers: int = 0
    non200: int = 0
    error_traces: int = 0
    no_done: int = 0
    disconnects: int = 0  # connection failures, timeouts, streams cut
    done: int = 0
    short: int = 0  # ended with [DONE] but fewer text traces than the fake sent (a turn stopped early)
    open_now: int = 0
    tokens_now: int = 0  # open streams that have received their first text trace
    peak_open: int = 0
    peak_tokens: int = 0
    peak_upstream: int = 0
    peak_connections: int = 0  # client connections to daphne (ESTABLISHED), whether or not headers came yet
    rss_at_peak_kib: int | None = None  # VmRSS sampled when the most streams were open
    max_rss_kib: int | None = None
    hwm_kib: int | None = None
    idle_rss_kib: int | None = None
    peak_threads: int = 0  # OS threads of the daphne process (Django gives each request a thread for its sync work)
    ramp_seconds: float = math.nan
    first_end_after_ramp: bool = True  # no stream completed before the last one was asked for
    header_ms: list[float] = field(default_factory=list)  # request sent to response headers
    gaps_ms: list[float] = field(default_factory=list)  # between two text traces of a stream
    cpu_plateau: float = math.nan  # daphne CPU (fraction of one core) while all were open
    samples: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.non200 + self.error_traces + self.no_done + self.disconnects + self.short

    def error(self, description: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(description)


async def drive_streams(args, base_url: str, key: str, pid: int, fake_port: int, tokens: int) -> Streams:
    """Opens the streams in batches (each once the last has been asked for, `--batch-interval` later at most, and
    while fewer than `--max-pending` streams wait for their first byte: daphne sends the headers with the first
    event, which comes with the model's first token), samples while they run, and waits for their ends."""
    state = Streams()
    first_end: list[float] = []
    all_open = asyncio.Event()
    timeout = httpx.Timeout(connect=60, read=max(args.stream_timeout, 4 * args.stream_pace), write=60, pool=None)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)

    async def one(client: httpx.AsyncClient, n: int, answered: asyncio.Future) -> None:
        user = f"streams-u{n}"
        sent = time.perf_counter()
        opened = receiving = False
        texts = 0

        def where() -> str:
            return f"stream {n}, {texts} text traces, {time.perf_counter() - sent:.1f} s after its request"

        try:
            async with client.stream("POST", STREAM_PATH.format(user=user),
                                     json={"action": {"type": "text", "payload": f"hello {n}"}}) as response:
                answered.set_result(None)
                state.header_ms.append((time.perf_counter() - sent) * 1000)
                if response.status_code != 200:
                    state.non200 += 1
                    state.error(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
                    return
                state.ok_headers += 1
                opened = True
                state.open_now += 1
                state.peak_open = max(state.peak_open, state.open_now)
                done, last = False, None
                async for line in response.aiter_lines():
                    data = sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        done = True
                        break
                    kind = data.get("type")
                    if kind == "text":
                        texts += 1
                        now = time.perf_counter()
                        if last is not None:
                            state.gaps_ms.append((now - last) * 1000)
                        last = now
                        if not receiving:
                            receiving = True
                            state.tokens_now += 1
                            state.peak_tokens = max(state.peak_tokens, state.tokens_now)
                    elif kind == "error":
                        state.error_traces += 1
                        state.error(f"error trace {data.get('payload')} ({where()})")
                if not done:
                    state.no_done += 1
                    state.error(f"no [DONE] ({where()})")
                elif texts < tokens:
                    state.short += 1
                    state.error(f"[DONE] after too few text traces ({where()})")
                else:
                    state.done += 1
                    if not all_open.is_set():
                        first_end.append(time.perf_counter())
        except (httpx.HTTPError, OSError) as exc:
            state.disconnects += 1
            state.error(f"{type(exc).__name__}: {exc!r} ({where()})"[:300])
        finally:
            if not answered.done():
                answered.set_result(None)
            if opened:
                state.open_now -= 1
            if receiving:
                state.tokens_now -= 1

    async def sample(stop: asyncio.Event) -> None:
        next_upstream = 0.0
        while not stop.is_set():
            rss = proc_status_kib(pid, "VmRSS")
            state.peak_threads = max(state.peak_threads, proc_status_kib(pid, "Threads") or 0)
            if rss is not None:
                state.max_rss_kib = max(state.max_rss_kib or 0, rss)
                if state.open_now >= state.peak_open and state.open_now:
                    state.rss_at_peak_kib = rss
            if time.perf_counter() >= next_upstream:  # reading /proc/net/tcp costs a few ms at thousands of sockets
                upstream, clients = await asyncio.to_thread(lambda: (established_to(fake_port),
                                                                     established_to(daphne_port)))
                state.peak_upstream = max(state.peak_upstream, upstream)
                state.peak_connections = max(state.peak_connections, clients)
                next_upstream = time.perf_counter() + 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def report_progress(stop: asyncio.Event, started: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
            print(f"    {time.perf_counter() - started:5.1f} s: requested {state.requested}, open {state.open_now}, "
                  f"receiving tokens {state.tokens_now}, done {state.done}, errors {state.errors}, daphne RSS "
                  f"{mib(proc_status_kib(pid, 'VmRSS')):.0f} MiB", flush=True)

    async def ramp_and_hold(tasks: list[asyncio.Task]) -> None:
        loop = asyncio.get_running_loop()
        for first in range(0, args.streams, args.batch):
            batch_started = time.perf_counter()
            for n in range(first, min(first + args.batch, args.streams)):
                future = loop.create_future()
                future.add_done_callback(pending.discard)
                pending.add(future)
                tasks.append(asyncio.create_task(one(client, n, future)))
                state.requested += 1
            await asyncio.sleep(max(0.0, args.batch_interval - (time.perf_counter() - batch_started)))
            while len(pending) > max(0, args.max_pending - args.batch):
                await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
        state.ramp_seconds = time.perf_counter() - started
        all_open.set()
        state.first_end_after_ramp = not first_end
        # The plateau: every stream has been asked for; hold while they run, measuring the server's CPU.
        cpu_before, plateau_started = cpu_seconds(pid), time.perf_counter()
        profiler = None
        if args.profile:
            profiler = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--duration",
                str(max(1, int(args.hold))), "--rate", "50", "--format", "raw", "--output", str(args.profile),
                "--nonblocking", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(args.hold)
        state.cpu_plateau = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - plateau_started)
        print(f"    all {args.streams} asked for in {state.ramp_seconds:.1f} s; held {args.hold:.0f} s, now "
              f"waiting for the streams to end", flush=True)
        if profiler is not None:
            await profiler.wait()
            print(f"    py-spy ({profiler.returncode}): {args.profile}", flush=True)
        await asyncio.wait(tasks, timeout=args.stream_seconds + 180)

    daphne_port = int(base_url.rsplit(":", 1)[1])
    pending: set[asyncio.Future] = set()
    state.idle_rss_kib = proc_status_kib(pid, "VmRSS")
    stop = asyncio.Event()
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout,
                                 limits=limits) as client:
        sampler = asyncio.create_task(sample(stop))
        progress = asyncio.create_task(report_progress(stop, started))
        tasks: list[asyncio.Task] = []
        try:
            await ramp_and_hold(tasks)
        finally:  # also when interrupted: no stream outlives the client
            for task in tasks:
                task.cancel()
            stop.set()
            await asyncio.gather(sampler, progress, *tasks, return_exceptions=True)
    state.hwm_kib = proc_status_kib(pid, "VmHWM")
    return state


@contextlib.contextmanager
def fake_process(args, log_dir: Path):
    """The standalone fake model on a free port, until the block ends."""
    port = free_port()
    tokens = max(1, math.ceil(args.stream_seconds / args.stream_pace))
    command = [sys.executable, "-m", "tests.fakes.llm_server", "--port", str(port), "--tokens", str(tokens),
               "--pace", str(args.stream_pace), "--first-token-delay", str(args.stream_first_token_delay)]
    with open(log_dir / "fake-model.log", "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the fake model exited with {process.returncode} (log: {log_dir})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the fake model did not answer in 30 s")
            time.sleep(0.1)
        yield process, port, tokens
    finally:
        process_stop(process)


def part_streams(args, env: dict[str, str], key: str, log_dir: Path) -> Streams:
    with fake_process(args, log_dir) as (fake, port, tokens):
        model_env = {"CONDUET_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1", "CONDUET_LLM_MODEL": MODEL,
                     "CONDUET_LLM_API_KEY": "sk-fake"}
        full_env = {**env, **model_env, **STREAMS_ENV, **dict(args.server_env)}
        changed = {name: value for name, value in full_env.items() if name in STREAMS_ENV or
                   name in dict(args.server_env)}
        print(f"\nPart 2: open streams. Fake model process {fake.pid} on port {port}: {tokens} tokens, "
              f"{args.stream_pace:g} s apart, first after {args.stream_first_token_delay:g} s "
              f"(~{args.stream_seconds:.0f} s a stream)\n  server settings: "
              f"{' '.join(f'{k}={v}' for k, v in sorted(changed.items()))}", flush=True)
        with daphne_group(env=full_env, count=1, log_dir=log_dir) as single:
            pid = single.pids[0]
            print(f"  one daphne process (pid {pid}) on {single.base_url}; {args.streams} streams in batches of "
                  f"{args.batch}, one batch every {args.batch_interval:g} s at most", flush=True)
            result = asyncio.run(drive_streams(args, single.base_url, key, pid, port, tokens))
            single.check_alive()
        if fake.poll() is not None:
            raise RuntimeError(f"the fake model exited with {fake.returncode} during part 2")
    return result


# --- the report


def report(args, first: list[FirstTokens], streams: Streams | None, problems: list[str]) -> None:
    print("\n" + "=" * 100)
    if first:
        print(f"First token (fake: first token after {args.first_token_delay * 1000:.0f} ms, then "
              f"{args.tokens - 1} more {args.pace * 1000:.0f} ms apart); times in ms")
        print(f"  {'path':<9}{'mode':<11}{'streams':>7}  {'added p50':>9} {'added p99':>9}  {'TTFT p50':>9} "
              f"{'TTFT p99':>9}  {'errors':>6}")
        for r in first:
            print(f"  {r.path:<9}{r.mode:<11}{len(r.added_ms):>7}  {percentile(r.added_ms, 50):>9.2f} "
                  f"{percentile(r.added_ms, 99):>9.2f}  {percentile(r.ttft_ms, 50):>9.2f} "
                  f"{percentile(r.ttft_ms, 99):>9.2f}  {r.errors:>6}")
        by_mode: dict[str, dict[str, FirstTokens]] = {}
        for r in first:
            by_mode.setdefault(r.mode, {})[r.path] = r
        for mode, row in by_mode.items():
            direct, conduet = row.get("direct"), row.get("conduet")
            if not (direct and conduet and conduet.added_ms and direct.added_ms):
                continue
            added = percentile(conduet.added_ms, 50)
            net = added - percentile(direct.added_ms, 50)
            ratio = percentile(conduet.ttft_ms, 50) / percentile(direct.ttft_ms, 50)
            print(f"  {mode:<10} server adds p50 {added:.2f} ms (<= {ADDED_P50_MS:g}: "
                  f"{'PASS' if added <= ADDED_P50_MS else 'FAIL'}), {net:+.2f} ms over the direct client; "
                  f"p99 {percentile(conduet.added_ms, 99):.2f} ms; TTFT conduet/direct p50 {ratio:.3f}x "
                  f"(+{percentile(conduet.ttft_ms, 50) - percentile(direct.ttft_ms, 50):.1f} ms)")
    if streams:
        s = streams
        met = (s.peak_open >= STREAMS_TARGET and s.peak_tokens >= STREAMS_TARGET and s.errors == 0
               and mib(s.rss_at_peak_kib) < RSS_TARGET_MIB and mib(s.hwm_kib) < RSS_TARGET_MIB)
        print(f"\nOpen streams on one daphne process ({args.streams} asked for, a token every "
              f"{args.stream_pace:g} s for ~{args.stream_seconds:.0f} s)")
        print(f"  ramp {s.ramp_seconds:.1f} s; response headers p50 {percentile(s.header_ms, 50):.0f} ms "
              f"p99 {percentile(s.header_ms, 99):.0f} ms"
              + ("" if s.first_end_after_ramp else "; some streams completed before the ramp ended (a longer "
                                                   "--stream-seconds keeps more open at once)"))
        print(f"  client connections to daphne at once {s.peak_connections:>6}")
        print(f"  open at once (200, not ended)        {s.peak_open:>6}")
        print(f"  receiving tokens at once             {s.peak_tokens:>6}")
        print(f"  model connections at once (daphne)   {s.peak_upstream:>6}")
        print(f"  complete (every token, then [DONE])  {s.done:>6}")
        print(f"  errors                               {s.errors:>6}  (non-200 {s.non200}, error traces "
              f"{s.error_traces}, no [DONE] {s.no_done}, cut short {s.short}, disconnects/timeouts "
              f"{s.disconnects})")
        print(f"  daphne RSS idle / at peak / max / VmHWM  {mib(s.idle_rss_kib):.0f} / {mib(s.rss_at_peak_kib):.0f} / "
              f"{mib(s.max_rss_kib):.0f} / {mib(s.hwm_kib):.0f} MiB "
              f"(~{(mib(s.rss_at_peak_kib) - mib(s.idle_rss_kib)) * 1024 / max(s.peak_open, 1):.0f} KiB a stream)")
        print(f"  daphne threads at most               {s.peak_threads:>6}")
        print(f"  daphne CPU while all were asked for  {100 * s.cpu_plateau:.0f}% of a core")
        print(f"  gap between two text traces         p50 {percentile(s.gaps_ms, 50):.0f} ms  p99 "
              f"{percentile(s.gaps_ms, 99):.0f} ms  max {max(s.gaps_ms, default=math.nan):.0f} ms "
              f"(the fake paces {args.stream_pace * 1000:.0f} ms)")
        print(f"  target: {STREAMS_TARGET} open streams, all receiving, < {RSS_TARGET_MIB} MiB, no error: "
              f"{'PASS' if met else 'FAIL'}")
        for sample in s.samples:
            print(f"    error: {sample}")
    if problems:
        print("\nWhat daphne logged (count x line, ids blanked):")
        for line in problems[:12]:
            print(f"  {line}")
    print(f"\nMachine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the "
          f"end (other work on the machine shows in every figure).")


# --- the run


def setting(item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {item!r}")
    return name, value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "first-token", "streams"], default="all")
    group = parser.add_argument_group("part 1: the first token")
    group.add_argument("--first-token-delay", type=float, default=0.2, help="the fake's, seconds (default 0.2)")
    group.add_argument("--tokens", type=int, default=50, help="tokens a reply (default 50)")
    group.add_argument("--pace", type=float, default=0.02, help="seconds between tokens (default 0.02)")
    group.add_argument("--samples", type=int, default=40, help="sequential streams (default 40)")
    group.add_argument("--concurrency", type=int, default=8, help="concurrent streams (default 8; 1: none)")
    group.add_argument("--concurrent-samples", type=int, default=160, help="streams at --concurrency (default 160)")
    group.add_argument("--warmup", type=int, default=8, help="unreported streams per path first (default 8)")
    group = parser.add_argument_group("part 2: open streams")
    group.add_argument("--streams", type=int, default=STREAMS_TARGET, help=f"default {STREAMS_TARGET}")
    group.add_argument("--batch", type=int, default=100, help="streams opened together (default 100)")
    group.add_argument("--batch-interval", type=float, default=1.0, help="seconds between batches, at least")
    group.add_argument("--max-pending", type=int, default=400,
                       help="streams waiting for their first byte before the next batch waits (default 400)")
    group.add_argument("--stream-seconds", type=float, default=120.0,
                       help="how long the fake writes a reply (default 120: longer than the ramp plus --hold)")
    group.add_argument("--stream-pace", type=float, default=1.0, help="seconds between tokens (default 1)")
    group.add_argument("--stream-first-token-delay", type=float, default=1.0, help="seconds (default 1)")
    group.add_argument("--stream-timeout", type=float, default=60.0,
                       help="seconds a stream may go without a byte, the first one included, before it counts as "
                            "an error (default 60; daphne sends the headers with the first event)")
    group.add_argument("--hold", type=float, default=10.0,
                       help="seconds measured (CPU) once every stream has been asked for (default 10)")
    group.add_argument("--profile", type=Path, metavar="FILE",
                       help="record daphne with py-spy during --hold (collapsed stacks to FILE; py-spy in the venv)")
    group.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                       type=setting,
                       help="a setting of the daphne process in part 2 (repeatable)")
    parser.add_argument("--log-dir", type=Path, help="keep the daphne and fake logs there (default: a temporary "
                                                     "directory, removed after a run without failure)")
    args = parser.parse_args()
    if min(args.samples, args.concurrency, args.concurrent_samples, args.streams, args.batch, args.tokens) < 1:
        parser.error("counts must be positive")
    return args


def run(args, database_url: str, log_dir: Path) -> int:
    files = raise_open_files_limit()
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the openai SDK's transport logs each request at INFO
    if args.part != "first-token" and files < 3 * args.streams + 1000:
        print(f"Warning: the open-files limit is {files}; {args.streams} streams need some {3 * args.streams}")
    key = prepare(PROJECT)
    env = server_env(database_url)
    print(f"Conduet LLM streaming benchmark: an agentic project, one daphne process on PostgreSQL"
          f"{' and Redis' if env.get('REDIS_URL') else ''}. Machine: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run; open files {files}.", flush=True)
    first: list[FirstTokens] = []
    streams: Streams | None = None
    if args.part in ("all", "first-token"):
        first = part_first_token(args, env, key, log_dir)
    if args.part in ("all", "streams"):
        streams = part_streams(args, env, key, log_dir)
    report(args, first, streams, log_problems(log_dir))
    failed = [r for r in first if r.errors > MAX_FIRST_TOKEN_ERRORS * (r.errors + len(r.added_ms))]
    for r in failed:
        print(f"ERROR: part 1, {r.path} {r.mode}: {r.errors} of {r.errors + len(r.added_ms)} streams failed; "
              f"logs: {log_dir}")
    return 1 if failed else 0


def main() -> int:
    return bench_main(run, parse_args(), prefix="conduet-bench-llm-", command="bash .ci/bench llm")

if __name__ == "__main__":
    sys.exit(main())
