"""Load benchmark of the v1 interact endpoints against an async baseline view, all served by one daphne process on
PostgreSQL (and Redis when REDIS_URL is set); then the interact endpoint on two daphne processes behind one port.

    bash .ci/bench                      # starts a throwaway PostgreSQL + Redis, then runs this
    bash .ci/bench --duration 3         # a quick run
    python -m tests.bench.run           # with DATABASE_URL (postgres) and optionally REDIS_URL already set

The two processes each adopt their own listening socket on the same port (SO_REUSEPORT, so the kernel spreads the
connections); with `--shared-socket` they adopt one socket, as `daphne --fd` behind a process manager would, and the
first to wake up tends to accept a whole burst of connections (the CPU split in the report shows it).

It is a report: the exit code is 0 whether the targets are met or not, and 1 only when something went wrong (a
server died, the load generator failed, or more than 1% of a measurement's responses were errors)."""
import argparse
import os
import sys
from pathlib import Path

from tests.bench.drivers import TARGETS, Load, Result, printable, run_python, run_wrk, wrk_available, wrk_command
from tests.bench.servers import ServerGroup, bench_main, daphne_group, prepare, server_env

INTERACT_VS_BASELINE = 0.8  # at each concurrency
P99_CONCURRENCY, P99_MS = 8, 50.0  # interact (JSON)
STREAM_VS_INTERACT = 0.7  # at each concurrency
MAX_ERROR_FRACTION = 0.01

HEADER = """\
Conduet interact benchmark: one run, one machine, so the ratios matter, not the absolute numbers.
  baseline  POST /bench/baseline/{{user}}: an async view on psycopg's async pool doing a turn's minimum database
            work (key lookup, conversation upsert, two messages: three statements), none of the application
  interact  POST /api/v1/conversations/{{user}}/interact: the real turn, a JSON array of traces
  stream    POST /api/v1/conversations/{{user}}/interact/stream: the same turn as SSE; a response without
            `data: [DONE]` counts as an error
All three are served by the same daphne process (on {backing}), one after the other at each concurrency, {duration} s
each. Every user sends a launch, then "I can't log in"; each measurement uses new users.
Load: {driver}.
CPU ms/req: user + system CPU time of the daphne process(es) per request (/proc/<pid>/stat); PostgreSQL's, Redis's
and the load generator's are not in it. Machine: {cpus} CPUs, load average {load:.2f} before the run.
Targets: interact >= {ivb}x baseline at each concurrency; interact p99 <= {p99:.0f} ms at concurrency {p99c};
stream >= {svi}x interact at each concurrency."""


def measure(group: ServerGroup, load: Load, driver: str) -> Result:
    group.check_alive()
    if driver == "wrk":
        print(f"    $ {printable(wrk_command(group.base_url, load), load.key)}", flush=True)
    before = group.cpu()
    result = run_wrk(group.base_url, load) if driver == "wrk" else run_python(group.base_url, load)
    after = group.cpu()
    group.check_alive()
    result.cpu_seconds = {pid: after[pid] - before[pid] for pid in group.pids}
    result.processes = len(group.pids)
    print(f"  {load.target.name:<8} c={load.concurrency:<3} processes={result.processes}: {result.rate:8.1f} req/s  "
          f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  errors {result.errors}", flush=True)
    return result


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ratio(a: Result | None, b: Result | None) -> float:
    return a.rate / b.rate if a and b and b.rate else float("nan")


def report(results: list[Result], scale: tuple[Result, Result] | None) -> None:
    print(f"\n{'conc':>4}  {'target':<8} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} "
          f"{'errors':>6}")
    for r in results:
        print(f"{r.concurrency:>4}  {r.target:<8} {r.requests:>8} {r.rate:>8.1f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f} "
              f"{r.cpu_ms_per_request:>10.2f} {r.errors:>6}")

    print("\nTargets")
    by_level: dict[int, dict[str, Result]] = {}
    for r in results:
        by_level.setdefault(r.concurrency, {})[r.target] = r
    for level, row in sorted(by_level.items()):
        ivb = _ratio(row.get("interact"), row.get("baseline"))
        svi = _ratio(row.get("stream"), row.get("interact"))
        print(f"  c={level:<3} interact/baseline {ivb:5.2f}x (>= {INTERACT_VS_BASELINE}) "
              f"{_verdict(ivb >= INTERACT_VS_BASELINE):<4}   "
              f"stream/interact {svi:5.2f}x (>= {STREAM_VS_INTERACT}) {_verdict(svi >= STREAM_VS_INTERACT)}")
    interact = by_level.get(P99_CONCURRENCY, {}).get("interact")
    if interact:
        print(f"  c={P99_CONCURRENCY:<3} interact p99 {interact.p99_ms:.1f} ms (<= {P99_MS:.0f}) "
              f"{_verdict(interact.p99_ms <= P99_MS)}")
    else:
        print(f"  interact p99 at concurrency {P99_CONCURRENCY}: not measured (add {P99_CONCURRENCY} to --concurrency)")

    if scale:
        one, two = scale
        total = sum(two.cpu_seconds.values())
        split = " / ".join(f"{100 * s / total:.0f}%" for s in two.cpu_seconds.values()) if total else "n/a"
        print(f"\nTwo daphne processes behind one port, interact at c={two.concurrency}: {two.rate:.1f} req/s vs "
              f"{one.rate:.1f} req/s on one process = {_ratio(two, one):.2f}x "
              f"(p99 {two.p99_ms:.1f} vs {one.p99_ms:.1f} ms; CPU split between the two: {split})")


def errored(results: list[Result]) -> list[Result]:
    return [r for r in results if r.requests == 0 or r.error_fraction > MAX_ERROR_FRACTION]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                        help="open connections, one measurement each (default 1 8 32)")
    parser.add_argument("--driver", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk with tests/bench/interact.lua, or httpx (auto: wrk when installed)")
    parser.add_argument("--wrk-threads", type=int, choices=[1, 2], default=1,
                        help="wrk threads (default 1: the server and PostgreSQL need the other cores)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unreported load per target first")
    parser.add_argument("--users", type=int,
                        help="users a load thread rotates over, each a launch then a text turn (default: 4 per "
                             "connection, at least 16)")
    parser.add_argument("--scale-concurrency", type=int, default=32,
                        help="concurrency of the two-process comparison (default 32)")
    parser.add_argument("--no-scale", action="store_true", help="skip the two-process comparison")
    parser.add_argument("--shared-socket", action="store_true",
                        help="the two processes adopt one listening socket instead of one SO_REUSEPORT socket each")
    parser.add_argument("--log-dir", type=Path, help="keep the daphne logs there (default: a temporary directory)")
    args = parser.parse_args()
    if args.duration < 1 or args.warmup < 0 or (args.users or 1) < 1 or min(args.concurrency) < 1:
        parser.error("--duration, --users and --concurrency must be positive, --warmup not negative")
    if args.driver == "auto":
        args.driver = "wrk" if wrk_available() else "python"
    elif args.driver == "wrk" and not wrk_available():
        parser.error("wrk is not installed (apt-get install wrk), use --driver python")
    return args


def run(args: argparse.Namespace, database_url: str, log_dir: Path) -> int:
    key = prepare()
    env = server_env(database_url)
    driver = (f"wrk, {args.wrk_threads} thread(s), one connection per unit of concurrency, tests/bench/interact.lua "
              "(each command is printed)" if args.driver == "wrk"
              else "the Python (httpx) driver in this process (wrk is faster and lighter: apt-get install wrk)")
    print(HEADER.format(backing="PostgreSQL" + (" + Redis" if env.get("REDIS_URL") else " without Redis"),
                        duration=args.duration, driver=driver, ivb=INTERACT_VS_BASELINE, p99=P99_MS,
                        p99c=P99_CONCURRENCY, svi=STREAM_VS_INTERACT, cpus=os.cpu_count(), load=os.getloadavg()[0]),
          flush=True)

    def load(target: str, concurrency: int, label: str, duration: int | None = None) -> Load:
        return Load(TARGETS[target], concurrency, duration or args.duration, label, key, args.users,
                    args.wrk_threads)

    results: list[Result] = []
    scale: tuple[Result, Result] | None = None
    with daphne_group(env=env, count=1, log_dir=log_dir) as single:
        print(f"\nOne daphne process (pid {single.pids[0]}) on {single.base_url}")
        if args.warmup:
            print("Warm-up (not reported)")
            for target in TARGETS:
                measure(single, load(target, min(8, max(args.concurrency)), f"warm-{target}", args.warmup),
                        args.driver)
        print("Measurements")
        for level in args.concurrency:
            for target in TARGETS:
                results.append(measure(single, load(target, level, f"c{level}-{target}"), args.driver))
        if not args.no_scale:
            one = next((r for r in results if r.target == "interact" and r.concurrency == args.scale_concurrency),
                       None)
            if one is None:
                one = measure(single, load("interact", args.scale_concurrency, "scale-1"), args.driver)
    if not args.no_scale:
        with daphne_group(env=env, count=2, shared_socket=args.shared_socket, log_dir=log_dir) as pair:
            how = "sharing one listening socket" if args.shared_socket else "with one SO_REUSEPORT socket each"
            print(f"\nTwo daphne processes (pids {', '.join(map(str, pair.pids))}) {how} on {pair.base_url}")
            if args.warmup:
                measure(pair, load("interact", args.scale_concurrency, "warm-scale-2", args.warmup), args.driver)
            two = measure(pair, load("interact", args.scale_concurrency, "scale-2"), args.driver)
        scale = (one, two)

    report(results, scale)
    failed = errored(results + ([scale[1]] if scale else []))
    for r in failed:
        print(f"\nERROR: {r.target} at c={r.concurrency} on {r.processes} process(es): {r.errors} errors in "
              f"{r.requests} requests ({r.non2xx} non-2xx, {r.no_done} streams without [DONE], {r.socket_errors} "
              f"socket errors or timeouts; by status: {r.statuses or '-'}). Daphne logs: {log_dir}")
        for sample in r.samples:
            print(f"  first error: {sample}")
    return 1 if failed else 0


def main() -> int:
    return bench_main(run, parse_args(), prefix="conduet-bench-", command="bash .ci/bench")

if __name__ == "__main__":
    sys.exit(main())
