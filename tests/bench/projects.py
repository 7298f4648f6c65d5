"""Project Management API benchmark: validating and saving a large project document, and publishing it.

    bash .ci/bench projects                     # a throwaway PostgreSQL 16
    bash .ci/bench projects --runs 40           # more runs
    python -m tests.bench.projects              # with DATABASE_URL (postgres) already set

A project of `--workflows` workflows × `--steps` steps (default 200 × 50: 10,000 steps, about 1.3 MB of JSON) of
the usual step types — messages (a third of them templates, each text distinct), buttons with utterances,
captures, conditions and assignments (distinct expressions), an API call, a knowledge lookup, a jump to the next
workflow — is created in a throwaway database on the PostgreSQL server of DATABASE_URL. Then, in this process,
through the real API (DRF's APIClient in-process: the view, its serializers, the service, the ORM, PostgreSQL —
no HTTP socket or daphne), `--runs` times each:

- `PATCH /projects/{id}` of two small parts (`instructions` and `settings`): the stored 10,000 steps are read
  under the row lock, merged with them, validated as a whole, sealed and stored, and the whole document is
  returned with its ETag — the target operation;
- `PUT /projects/{id}/workflows/{wid}` of one edited workflow (the same whole-document path);
- `PATCH /projects/{id}` of the whole `workflows` part with one step changed (1.3 MB: over the API's 1 MiB body
  limit, which this process raises for it);
- `version_publish` (the snapshot sealed, its digest, the version row, production moved);
- `validate_document` alone, warm, and cold (the process's compiled-template and workflow caches emptied first:
  what the first write after a restart pays).

Baselines, in the same run: `json.loads(json.dumps(document))` of the same document (the floor of touching it at
all), and a plain `UPDATE agents_project SET document = %s` of it (the floor of storing it). The table gives
p50/p90 in ms and the p50's ratio to each baseline. Targets: PATCH p50 ≤ 200 ms, publish p50 ≤ 500 ms. Exit code 0
whether or not they are met, 1 when something failed."""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tests.bench.servers import bench_main

PATCH_TARGET_MS = 200.0
PUBLISH_TARGET_MS = 500.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50, help="steps per workflow")
    parser.add_argument("--runs", type=int, default=20, help="runs of each measurement")
    parser.add_argument("--profile", action="store_true", help="print where one PATCH spends its time (cProfile)")
    parser.add_argument("--log-dir", type=Path, help="keep the logs here")
    return parser.parse_args(argv)


# --- the document

def _step(w: int, i: int) -> dict:
    kind = i % 10
    sid = f"s{i}"
    if kind in (0, 4):
        return {"id": sid, "type": "message", "data": {"text": f"Step {i} of flow {w}: here is what happens next."}}
    if kind in (1, 7):
        return {"id": sid, "type": "message", "data": {
            "text": f"Thanks {{{{ customer_name|default('there') }}}}, step {i} of flow {w} is done."}}
    if kind == 2:
        return {"id": sid, "type": "buttons", "data": {"text": f"Which option for topic {w}?", "buttons": [
            {"label": "Yes, please", "value": "yes", "utterances": ["sure", "ok"]},
            {"label": "No, thanks", "value": "no", "utterances": ["nope"]},
            {"label": f"Tell me more about {w}", "value": "more"}]}}
    if kind == 3:
        return {"id": sid, "type": "capture", "data": {"prompt": "What's your email?", "variable": "email",
                                                        "validate": "email"}}
    if kind == 5:
        return {"id": sid, "type": "condition", "data": {"if": f"attempts > {i % 7} and plan == 'p{w}'"}}
    if kind == 6:
        return {"id": sid, "type": "set", "data": {"assign": {"attempts": f"(attempts or 0) + {i}",
                                                               "topic": f"'flow {w}'"}}}
    if kind == 8:
        return {"id": sid, "type": "api", "data": {"tool": "lookup", "args": {"email": "{{ email }}"},
                                                    "save": {"plan": "plan"}}}
    return {"id": sid, "type": "kb", "data": {"question": f"Topic {w}: {{{{ last_utterance }}}}"}}


def _port(step: dict) -> str:
    return {"buttons": "button:0", "condition": "true"}.get(step["type"], "next")


def workflow(w: int, steps: int, workflows: int) -> dict:
    items = [{"id": "start", "type": "start", "data": {"intents": [f"help with topic {w}", f"question {w}"]}}]
    items += [_step(w, i) for i in range(1, steps - 2)]
    items += [{"id": "jump", "type": "jump", "data": {"workflowId": f"wf_{(w + 1) % workflows}"}},
              {"id": "end", "type": "end", "data": {}}]
    connections = [{"source": a["id"], "port": _port(a), "target": b["id"]}
                   for a, b in zip(items, items[1:], strict=False)]
    return {"id": f"wf_{w}", "name": f"Flow {w}", "steps": items, "connections": connections}


def document(workflows: int, steps: int) -> dict:
    return {
        "instructions": "You are a support agent.",
        "workflows": [workflow(w, steps, workflows) for w in range(workflows)],
        "variables": [{"name": name, "type": kind} for name, kind in (
            ("customer_name", "string"), ("email", "string"), ("attempts", "number"), ("plan", "string"),
            ("topic", "string"))],
        "tools": [{"id": "lookup", "description": "Look an account up",
                   "parameters": {"type": "object", "properties": {"email": {"type": "string"}}},
                   "http": {"method": "GET", "url": "https://api.example.com/accounts/{{ email }}",
                            "headers": {"Authorization": "Bearer not-a-real-key"}}}],
        "settings": {"rateLimit": {"perMinute": 60}, "fallbackMessage": "Sorry?", "turnTimeoutSeconds": 120},
    }


# --- the measurements

def _timed(runs: int, call) -> list[float]:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def run(args, database_url: str, log_dir: Path) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from agents.models import Membership
    from agents.runtime import validate_document
    from agents.runtime.cache import TEMPLATES, WORKFLOWS
    from agents.services import (
        developer_token_create,
        project_create,
        project_update,
        user_create,
        version_publish,
        workspace_create,
    )

    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    settings.ALLOWED_HOSTS = ["*"]
    # In-process, as the tests run: the request's SQL (the rate limit's too) on Django's connection, not on the
    # async pool that daphne's event loop keeps (a sync view would make a loop, and a pool, per request).
    settings.CONDUET_DB_ASYNC_POOL = False
    settings.CONDUET_API_RATE_PER_MINUTE = 1_000_000
    source = document(args.workflows, args.steps)
    text = json.dumps(source)
    steps = sum(len(w["steps"]) for w in source["workflows"])
    print(f"A project of {args.workflows} workflows × {args.steps} steps ({steps:,} steps, "
          f"{len(text) / 1e6:.2f} MB of JSON), {args.runs} runs each, PostgreSQL, in-process (DRF APIClient)\n")

    user, _password = user_create(username="bench")
    workspace = workspace_create(name="Bench", slug="bench")
    Membership.objects.create(workspace=workspace, user=user)
    _row, token = developer_token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    start = time.perf_counter()
    project = project_create(workspace=workspace, name="Big", document=source)
    created_ms = (time.perf_counter() - start) * 1000
    url = f"/api/v1/projects/{project.id}"

    def check(response, status=200):
        if response.status_code != status:
            raise RuntimeError(f"{response.status_code}: {response.content[:500]!r}")
        return response

    results: dict[str, list[float]] = {}
    results["baseline: json loads+dumps"] = _timed(args.runs, lambda i: json.loads(json.dumps(source)))

    def plain_update(i: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE agents_project SET document = %s WHERE id = %s", [text, project.id])

    results["baseline: plain UPDATE"] = _timed(args.runs, plain_update)
    project_update(project=project, document=source, replace=True)  # sealed again (the UPDATE stored it plain)

    results["validate (warm)"] = _timed(args.runs, lambda i: validate_document(source))

    def validate_cold(i: int) -> None:
        TEMPLATES.clear()
        WORKFLOWS.clear()
        validate_document(source)

    results["validate (cold caches)"] = _timed(max(3, args.runs // 4), validate_cold)

    if args.profile:
        import cProfile
        import pstats

        check(client.patch(url, {"instructions": "Warm-up."}, format="json"))
        profiler = cProfile.Profile()
        profiler.runcall(lambda: check(client.patch(url, {"instructions": "Profiled."}, format="json")))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        return 0

    results["PATCH instructions+settings"] = _timed(args.runs, lambda i: check(client.patch(url, {
        "instructions": f"You are a support agent, version {i}.",
        "settings": {**source["settings"], "fallbackMessage": f"Sorry ({i})?"}}, format="json")))

    def put_workflow(i: int) -> None:
        edited = json.loads(json.dumps(source["workflows"][i % args.workflows]))
        edited["steps"][1]["data"]["text"] = f"Edited {i}: what happens next."
        check(client.put(f"{url}/workflows/{edited['id']}", edited, format="json"))

    results["PUT one workflow"] = _timed(args.runs, put_workflow)

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * len(text)  # this measurement only: the body is over 1 MiB

    def patch_workflows(i: int) -> None:
        workflows = json.loads(json.dumps(source["workflows"]))
        workflows[i % args.workflows]["steps"][1]["data"]["text"] = f"Edited {i}: what happens next."
        check(client.patch(url, {"workflows": workflows}, format="json"))

    results["PATCH whole workflows (1 step changed)"] = _timed(args.runs, patch_workflows)

    project.refresh_from_db()
    results["publish (version_publish)"] = _timed(args.runs, lambda i: version_publish(project=project,
                                                                                      name=f"v{i}"))
    _report(results, created_ms)
    return 0


def _report(results: dict[str, list[float]], created_ms: float) -> None:
    json_p50 = statistics.median(results["baseline: json loads+dumps"])
    update_p50 = statistics.median(results["baseline: plain UPDATE"])
    print(f"{'operation':<42} {'p50 ms':>8} {'p90 ms':>8} {'× json':>7} {'× UPDATE':>9}")
    for name, times in results.items():
        p50 = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 2 else p50
        print(f"{name:<42} {p50:8.1f} {p90:8.1f} {p50 / json_p50:7.1f} {p50 / update_p50:9.1f}")
    print(f"\n(project_create of the document, once, cold: {created_ms:.0f} ms)")
    patch = statistics.median(results["PATCH instructions+settings"])
    publish = statistics.median(results["publish (version_publish)"])
    print("\nTargets:")
    print(f"  PATCH p50 {patch:.1f} ms (≤ {PATCH_TARGET_MS:.0f} ms): "
          f"{'met' if patch <= PATCH_TARGET_MS else 'NOT met'}")
    print(f"  publish p50 {publish:.1f} ms (≤ {PUBLISH_TARGET_MS:.0f} ms): "
          f"{'met' if publish <= PUBLISH_TARGET_MS else 'NOT met'}")


def main() -> int:
    args = parse_args()
    return bench_main(run, args, prefix="conduet-bench-projects-", command="bash .ci/bench projects")


if __name__ == "__main__":
    sys.exit(main())
