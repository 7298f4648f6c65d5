"""Knowledge-base benchmark: ingestion (chunks/s) and search latency (p50/p99 at topK 5), on PostgreSQL with
pgvector and on SQLite with sqlite-vec, each in a process of its own.

    bash .ci/bench knowledge                    # a throwaway PostgreSQL 16 + pgvector, then both databases
    bash .ci/bench knowledge --chunks 20000     # a smaller corpus
    python -m tests.bench.knowledge             # with DATABASE_URL (postgres) already set

For each database it ingests a synthetic corpus of `--chunks` chunks twice, through the real path
(`document_create_text` → `document_process`: store, extract, chunk, embed, index, one document after the other in
one process, as one worker does): once lexical only, once with embeddings from the fake endpoint of
tests/fakes/embeddings_server.py run as its own process. The documents are help-centre-like text over a
Zipf-distributed vocabulary (its most frequent words English stop words, the rest made-up words), in sections of a
few paragraphs. The in-run baseline is a plain `INSERT` of the same number of chunk-sized texts into a table with
no index or trigger, in batches of 1,000: the floor of writing the rows at all; the table gives chunks/s and the
ratio to it.

Then, on the corpus with embeddings, `--queries` searches a mode (after a warm-up): each question is three to five
words of a random chunk of the corpus, not in order. Semantic and hybrid search include embedding the question
over HTTP at the fake endpoint. The baseline is a primary-key `SELECT` of five chunks (one round trip returning five
rows); the table gives p50/p99 and the p50 ratio to it, and the share of questions whose source chunk came first.

Targets: hybrid p50 ≤ 30 ms on PostgreSQL at 100,000 chunks; ingestion ≥ 1,000 chunks/s lexical. Exit code 0
whether or not they are met, 1 when something failed."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.servers import ROOT, create_database, drop_database

HYBRID_P50_TARGET_MS = 30.0
LEXICAL_INGEST_TARGET = 1000.0  # chunks/s
PARAGRAPH_WORDS = (60, 150)
PARAGRAPHS_PER_SECTION = 4
SECTIONS_PER_DOCUMENT = 12  # about 45 chunks a document: a long help article, a short manual


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks per corpus (default 100,000)")
    parser.add_argument("--queries", type=int, default=200, help="searches per mode")
    parser.add_argument("--databases", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=["postgres", "sqlite"], help=argparse.SUPPRESS)
    parser.add_argument("--embeddings-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the corpus

# Real text's most frequent words are stop words (Zipf's top ranks): the vocabulary starts with them, in order.
STOP_WORDS = ("the of and to a in is you that it for on with as are be this your can or by at from we have not "
              "an will if our all when your more any may do has what about which their there so one been also "
              "would how they each other into only than then these some its after before them should over such "
              "use where most very just while both those through during here being same own why few down off "
              "under again further once until because between against above below up out").split()


def _vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    letters = "abcdefghiklmnoprstuvy"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    return list(dict.fromkeys(STOP_WORDS)) + sorted(words - set(STOP_WORDS))


def _documents(rng: random.Random):
    """Endless documents: (name, markdown text)."""
    vocabulary = _vocabulary(rng)
    cumulative, total = [], 0.0
    for rank in range(len(vocabulary)):
        total += 1 / (rank + 1)
        cumulative.append(total)
    number = 0
    while True:
        number += 1
        sections = []
        for section in range(SECTIONS_PER_DOCUMENT):
            heading = " ".join(rng.choices(vocabulary, k=3))
            paragraphs = []
            for _ in range(PARAGRAPHS_PER_SECTION):
                words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(*PARAGRAPH_WORDS))
                paragraphs.append(" ".join(words).capitalize() + ".")
            sections.append(f"## {heading.title()} {section + 1}\n\n" + "\n\n".join(paragraphs))
        yield f"Help article {number}", f"# Help article {number}\n\n" + "\n\n".join(sections)


# --- one database, in its own process

def _ingest(project, documents, target: int) -> dict:
    """Documents are made before the clock starts (their words cost more than their ingestion): about enough for
    `target` chunks, and more if those were too few."""
    import agents.knowledge.embeddings  # noqa: F401  (a worker imports these once, at start: the openai SDK alone
    import agents.knowledge.extract  # noqa: F401  takes seconds, which the first document was charged)
    import agents.knowledge.tasks  # noqa: F401
    from agents.knowledge.chunking import chunk_document
    from agents.knowledge.models import KnowledgeDocument
    from agents.knowledge.services import document_create_text, document_process

    sample = next(documents)
    per_document = len(chunk_document(sample[1], size_words=180, overlap_words=30))
    batch = [sample] + [next(documents) for _ in range(max(1, target // max(per_document, 1)))]
    chunks = count = 0
    seconds = 0.0
    while chunks < target:
        if not batch:
            batch = [next(documents) for _ in range(10)]
        name, text = batch.pop()
        started = time.perf_counter()
        document = document_create_text(project=project, name=name, content=text, metadata={"batch": "bench"})
        document_process(document_id=document.id)
        document.refresh_from_db()
        if document.status != KnowledgeDocument.Status.READY:
            raise RuntimeError(f"{document.name} ended {document.status}: {document.error}")
        seconds += time.perf_counter() - started
        chunks += document.chunk_count
        count += 1
    return {"chunks": chunks, "documents": count, "seconds": seconds, "per_second": chunks / seconds}


def _baseline_insert(total: int) -> dict:
    """Plain rows, no index, no trigger: the floor of writing `total` chunk-sized texts."""
    from django.db import connection, transaction

    text = " ".join(["lorem"] * 150)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_plain (id integer PRIMARY KEY, body text NOT NULL)")
    started = time.perf_counter()
    for start in range(0, total, 1000):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany("INSERT INTO bench_plain (id, body) VALUES (%s, %s)",
                               [(i, text) for i in range(start, min(start + 1000, total))])
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_plain")
    return {"chunks": total, "seconds": seconds, "per_second": total / seconds}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _questions(project, rng: random.Random, count: int) -> list[tuple[str, int]]:
    from agents.knowledge.models import KnowledgeChunk

    ids = list(KnowledgeChunk.objects.filter(project=project).values_list("id", flat=True))
    questions = []
    for chunk in KnowledgeChunk.objects.filter(id__in=rng.sample(ids, min(count, len(ids)))):
        words = [word.strip(".").lower() for word in chunk.content.split() if len(word) > 3]
        questions.append((" ".join(rng.sample(words, min(len(words), rng.randint(3, 5)))), chunk.id))
    return questions


def _search(project, questions, mode: str) -> dict:
    from agents.knowledge.search import knowledge_search

    for question, _ in questions[:20]:  # warm-up: caches, the HNSW index's pages, the HTTP connection
        knowledge_search(project=project, query=question, top_k=5, mode=mode)
    times, first = [], 0
    for question, chunk_id in questions:
        started = time.perf_counter()
        outcome = knowledge_search(project=project, query=question, top_k=5, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
        if outcome.mode != mode:
            raise RuntimeError(f"{mode} search ran {outcome.mode}: {outcome.notes}")
        first += bool(outcome.hits) and outcome.hits[0].chunk_id == chunk_id
    return {"p50": statistics.median(times), "p99": _percentile(times, 0.99), "top1": first / len(questions)}


def _baseline_select(project, questions) -> dict:
    from django.db import connection

    from agents.knowledge.models import KnowledgeChunk

    ids = list(KnowledgeChunk.objects.filter(project=project).values_list("id", flat=True)[:5000])
    times = []
    with connection.cursor() as cursor:
        for _ in questions:
            picked = random.sample(ids, 5)
            started = time.perf_counter()
            cursor.execute("SELECT id, content FROM knowledge_chunk WHERE id IN (%s, %s, %s, %s, %s)", picked)
            cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return {"p50": statistics.median(times), "p99": _percentile(times, 0.99)}


def child(args) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from agents.knowledge import index
    from agents.services import project_create, workspace_create

    call_command("migrate", interactive=False, verbosity=0)
    rng = random.Random(args.seed)
    documents = _documents(rng)
    workspace = workspace_create(name="Bench", slug="bench")
    result = {"database": args.child, "vectors": index.vectors_available()}

    settings.CONDUET_EMBEDDINGS_BASE_URL = None
    lexical_project = project_create(workspace=workspace, name="Lexical", document={})
    result["ingest_lexical"] = _ingest(lexical_project, documents, args.chunks)
    result["ingest_baseline"] = _baseline_insert(result["ingest_lexical"]["chunks"])

    settings.CONDUET_EMBEDDINGS_BASE_URL = args.embeddings_url
    project = project_create(workspace=workspace, name="Embedded", document={})
    result["ingest_embedded"] = _ingest(project, documents, args.chunks)

    questions = _questions(project, rng, args.queries)
    result["search_baseline"] = _baseline_select(project, questions)
    for mode in ("lexical", "semantic", "hybrid"):
        result[f"search_{mode}"] = _search(project, questions, mode)
    return result


# --- the orchestration

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_child(args, database: str, database_url: str, embeddings_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings",
           "LOG_LEVEL": "WARNING", "CONDUET_MEDIA_ROOT": tempfile.mkdtemp(prefix="conduet-bench-media-")}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "tests.bench.knowledge", "--child", database, "--embeddings-url", embeddings_url,
               "--chunks", str(args.chunks), "--queries", str(args.queries), "--seed", str(args.seed)]
    print(f"  {database}: ingesting 2 × {args.chunks:,} chunks, then {args.queries} searches per mode…", flush=True)
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"the {database} run failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _report(results: list[dict]) -> None:
    print("\nIngestion (chunks/s; ratio to a plain INSERT of as many rows)")
    print(f"  {'database':<10} {'chunks':>8} {'lexical':>10} {'ratio':>7} {'embedded':>10} {'ratio':>7} "
          f"{'plain':>10}")
    for r in results:
        base = r["ingest_baseline"]["per_second"]
        lexical, embedded = r["ingest_lexical"]["per_second"], r["ingest_embedded"]["per_second"]
        print(f"  {r['database']:<10} {r['ingest_lexical']['chunks']:>8,} {lexical:>10,.0f} {lexical / base:>7.3f} "
              f"{embedded:>10,.0f} {embedded / base:>7.3f} {base:>10,.0f}")
    print("\nSearch at topK 5 (ms; p50 ratio to a primary-key SELECT of five chunks; "
          "top1 = the question's chunk first)")
    print(f"  {'database':<10} {'mode':<9} {'p50':>8} {'p99':>8} {'ratio':>8} {'top1':>6}")
    for r in results:
        base = r["search_baseline"]["p50"]
        print(f"  {r['database']:<10} {'baseline':<9} {base:>8.2f} {r['search_baseline']['p99']:>8.2f}")
        for mode in ("lexical", "semantic", "hybrid"):
            s = r[f"search_{mode}"]
            print(f"  {r['database']:<10} {mode:<9} {s['p50']:>8.2f} {s['p99']:>8.2f} {s['p50'] / base:>8.1f} "
                  f"{s['top1']:>6.0%}")
    print("\nTargets")
    for r in results:
        lexical = r["ingest_lexical"]["per_second"]
        verdict = "met" if lexical >= LEXICAL_INGEST_TARGET else "NOT met"
        print(f"  {r['database']}: lexical ingestion {lexical:,.0f} chunks/s (≥ {LEXICAL_INGEST_TARGET:,.0f}): "
              f"{verdict}")
        if r["database"] == "postgres":
            p50 = r["search_hybrid"]["p50"]
            verdict = "met" if p50 <= HYBRID_P50_TARGET_MS else "NOT met"
            print(f"  postgres: hybrid p50 {p50:.1f} ms at {r['ingest_embedded']['chunks']:,} chunks "
                  f"(≤ {HYBRID_P50_TARGET_MS:.0f} ms): {verdict}")


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    admin_url = os.environ.get("DATABASE_URL", "")
    if "postgres" in args.databases and not admin_url.startswith(("postgres://", "postgresql://")):
        print("The PostgreSQL run needs DATABASE_URL=postgres://… (or use `bash .ci/bench knowledge`).")
        return 2
    port = _free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.embeddings_server", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(1.0)
        embeddings_url = f"http://127.0.0.1:{port}/v1"
        for database in args.databases:
            if database == "postgres":
                url = create_database(admin_url)
                try:
                    results.append(_run_child(args, database, url, embeddings_url))
                finally:
                    drop_database(url)
            else:
                with tempfile.TemporaryDirectory(prefix="conduet-bench-sqlite-") as directory:
                    url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
                    results.append(_run_child(args, database, url, embeddings_url))
    except Exception as exc:
        print(f"\nThe benchmark failed: {exc}")
        return 1
    finally:
        fake.terminate()
        fake.wait()
    _report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
