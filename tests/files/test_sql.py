"""SQL over a conversation's data frames (files/sql.py): good queries store their result as a frame with its SQL and
parents; everything else — another statement, a file, the catalogue, too long, too big — is refused with a message
the agent can act on, and leaks no server path."""
import datetime
import decimal
import threading

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from asgiref.sync import async_to_sync

from conversations.models import Conversation
from files.models import DataFrame
from files.sql import DataQueryError, adata_query_run, data_query_run, frame_payload, frames_describe, sandbox
from files.store import frame_create, frame_local_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

SALES = pl.DataFrame({"region": ["north", "south", "north", "east", "south"], "amount": [10.5, 20.0, 4.5, 7.0, 1.0],
                      "month": [datetime.date(2024, m, 1) for m in (1, 1, 2, 2, 3)]})
TARGETS = pl.DataFrame({"region": ["north", "south", "east"], "target": [12, 25, 5]})


def conversation_of(project=None) -> Conversation:
    project = project or ProjectFactory()
    conversation = Conversation.objects.create(project=project, kind="v2", name="Q3", user_id="x")
    Conversation.objects.filter(pk=conversation.pk).update(user_id=conversation.pk)
    return conversation


@pytest.fixture
def conversation():
    conversation = conversation_of()
    frame_create(conversation_id=conversation.id, name="sales.csv", table=SALES)
    frame_create(conversation_id=conversation.id, name="targets.csv", table=TARGETS)
    return conversation


def stored(frame: DataFrame) -> pl.DataFrame:
    with frame_local_path(frame) as path:
        return pl.read_parquet(path)


def run(conversation, sql: str, name: str = "result") -> DataFrame:
    return data_query_run(conversation_id=conversation.id, sql=sql, name=name)


def refused(conversation, sql: str) -> str:
    with pytest.raises(DataQueryError) as caught:
        run(conversation, sql)
    return str(caught.value)


# --- good queries


def test_an_aggregate_is_stored_as_a_frame_with_its_sql_and_parent(conversation):
    sql = "SELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY total DESC"
    frame = run(conversation, sql, name="totals")

    assert (frame.name, frame.status, frame.num_rows, frame.num_columns) == ("totals", "ready", 3, 2)
    assert frame.sql_query == sql
    assert frame.parent_data_frame_ids == [DataFrame.objects.get(name="sales").id]
    assert stored(frame).rows() == [("south", 21.0), ("north", 15.0), ("east", 7.0)]
    assert [c["name"] for c in frame.columns] == ["region", "total"]
    payload = frame_payload(frame)
    assert payload["name"] == "totals" and payload["numRows"] == 3 and payload["columns"] == ["region", "total"]
    assert payload["dataFrameId"] == frame.id and payload["sqlQuery"] == sql
    assert payload["sampleRows"] == [["south", 21.0], ["north", 15.0], ["east", 7.0]]


def test_a_join_of_two_frames_records_both_parents(conversation):
    frame = run(conversation, "SELECT s.region, sum(s.amount) >= t.target AS met FROM sales s "
                              "JOIN targets t USING (region) GROUP BY s.region, t.target ORDER BY s.region")
    ids = dict(DataFrame.objects.values_list("name", "id"))
    assert frame.parent_data_frame_ids == [ids["sales"], ids["targets"]]
    assert stored(frame).rows() == [("east", True), ("north", True), ("south", False)]


def test_order_by_limit_ctes_and_names_made_unique(conversation):
    first = run(conversation, "WITH big AS (SELECT * FROM sales WHERE amount > 5) SELECT * FROM big ORDER BY amount "
                              "LIMIT 2", name="Top sales!")
    second = run(conversation, "select 1 as one", name="top sales")
    third = run(conversation, "from sales select month, amount;", name="")

    assert (first.name, second.name, third.name) == ("top_sales", "top_sales_2", "result")
    assert stored(first)["amount"].to_list() == [7.0, 10.5]
    assert first.parent_data_frame_ids == [DataFrame.objects.get(name="sales").id]  # `big` is a CTE, not a frame
    assert second.parent_data_frame_ids == []
    assert frame_payload(third)["sampleRows"][0] == ["2024-01-01", 10.5]  # dates as ISO text


def test_frames_of_another_conversation_or_failed_ones_are_not_tables(conversation):
    other = conversation_of(conversation.project)
    frame_create(conversation_id=other.id, name="secret", table=pl.DataFrame({"x": [1]}))
    frame_create(conversation_id=conversation.id, name="broken.csv", error="Row 3 has 4 fields, expected 3.")

    assert "no data frame named 'secret'" in refused(conversation, "SELECT * FROM secret")
    assert "no data frame named 'broken'" in refused(conversation, "SELECT * FROM broken")
    assert "(sales, targets)" in refused(conversation, "SELECT * FROM broken")


def test_the_agent_sees_each_frames_name_columns_types_and_first_rows(conversation):
    frame_create(conversation_id=conversation.id, name="broken.csv", error="unreadable")
    described = frames_describe(conversation_id=conversation.id, sample_rows=2)

    assert [d["name"] for d in described] == ["sales", "targets"]
    assert described[0] == {"name": "sales", "numRows": 5, "columns": [
        {"name": "region", "dtype": "String"}, {"name": "amount", "dtype": "Float64"},
        {"name": "month", "dtype": "Date"}], "sampleRows": [["north", 10.5, "2024-01-01"], ["south", 20.0,
                                                                                             "2024-01-01"]]}
    assert frames_describe(conversation_id=conversation.id, sample_rows=0)[1]["sampleRows"] == []


def test_decimal_sums_and_long_text_read_as_json(conversation):
    frame = run(conversation, "SELECT sum(target) AS total, 1.5::DECIMAL(4,2) AS d, repeat('x', 500) AS long "
                              "FROM targets")
    [[total, d, long]] = frame_payload(frame)["sampleRows"]
    assert (total, d) == (42, 1.5) and len(long) == 201 and long.endswith("…")
    assert isinstance(stored(frame)["total"][0], int | decimal.Decimal)


def test_the_async_run_stores_the_frame_from_a_worker_thread(conversation):
    frame = async_to_sync(adata_query_run)(conversation_id=conversation.id, sql="SELECT count(*) AS n FROM sales",
                                           name="n")
    assert frame.num_rows == 1 and frame_payload(frame)["sampleRows"] == [[5]]


# --- refused


@pytest.mark.parametrize(("sql", "message"), [
    ("COPY sales TO '/tmp/out.csv'", "Only a read-only SELECT query may be run: COPY statements are refused."),
    ("ATTACH '/tmp/x.db' AS x", "Only a read-only SELECT query may be run: ATTACH statements are refused."),
    ("INSTALL httpfs", "Only a read-only SELECT query may be run: INSTALL statements are refused."),
    ("LOAD httpfs", "Only a read-only SELECT query may be run: LOAD statements are refused."),
    ("SET threads = 64", "Only a read-only SELECT query may be run: SET statements are refused."),
    ("PRAGMA version", "Only a read-only SELECT query may be run: PRAGMA statements are refused."),
    ("CREATE TABLE t AS SELECT * FROM sales", "Only a read-only SELECT query may be run: CREATE statements are "
                                              "refused."),
    ("EXPLAIN SELECT * FROM sales", "Only a read-only SELECT query may be run: EXPLAIN statements are refused."),
    ("SELECT 1; SELECT 2", "Only one statement may be run; this SQL has 2. Send one SELECT."),
    ("SELECT * FROM sales; DROP TABLE sales", "Only one statement may be run; this SQL has 2. Send one SELECT."),
    ("", "Give one SELECT query over the conversation's data frames."),
    ("  ;  ", "Give one SELECT query over the conversation's data frames."),
    ("SELEKT 1", "The SQL does not parse: Parser Error: syntax error at or near \"SELEKT\""),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv is not available: SQL reads only the conversation's data "
                                              "frames (sales, targets), never files, URLs or the catalogue."),
    ("SELECT * FROM read_parquet('/srv/media/conversations/x/frames/df_1.parquet')", "read_parquet is not "
     "available"),
    ("SELECT * FROM sales, read_text('/etc/hostname')", "read_text is not available"),
    ("SELECT * FROM '/etc/passwd'", "There is no data frame named '/etc/passwd': SQL reads only the conversation's "
                                    "data frames (sales, targets), never files, URLs or the database catalogue."),
    ("FROM 'https://example.com/data.csv'", "There is no data frame named 'https://example.com/data.csv'"),
    ("SELECT * FROM duckdb_settings()", "duckdb_settings is not available"),
    ("SELECT * FROM information_schema.tables", "There is no data frame named 'information_schema.tables'"),
    ("SELECT * FROM query('SELECT 1')", "query is not available"),
    ("SELECT current_setting('allowed_paths')", "The function current_setting is not available here."),
    ("SHOW TABLES", "SHOW is not available"),
    ("SELECT * FROM (SELECT * FROM nowhere) n", "There is no data frame named 'nowhere'"),
    ("SELECT nope FROM sales", 'Binder Error: Referenced column "nope" not found in FROM clause!'),
    ("SELECT s.region, t.region FROM sales s JOIN targets t USING (region)",
     "The result has several columns named region: give each column its own name (AS)."),
])
def test_refused_with_a_clear_message(conversation, sql, message):
    assert message in refused(conversation, sql)
    assert DataFrame.objects.count() == 2  # nothing stored


def test_describe_and_summarize_of_a_frame_are_reads(conversation):
    assert run(conversation, "DESCRIBE sales").num_rows == 3
    assert "no data frame named 'secret'" in refused(conversation, "DESCRIBE secret")


def test_a_query_over_the_time_limit_is_stopped(conversation, settings):
    settings.CONDUET_DATA_QUERY_TIMEOUT_SECONDS = 0.3
    message = refused(conversation, "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range <> b.range")
    assert message == ("The query ran longer than 0.3 s (CONDUET_DATA_QUERY_TIMEOUT_SECONDS) and was stopped. "
                       "Simplify it or filter the frames first.")


def test_a_stop_from_the_caller_interrupts_the_query(conversation):
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(DataQueryError, match="The query was stopped."):
        data_query_run(conversation_id=conversation.id, sql="SELECT count(*) FROM range(100000) a, range(100000) b "
                                                            "WHERE a.range <> b.range", name="x", stop=stop)


def test_a_result_over_the_row_limit_is_refused_not_truncated(conversation, settings):
    settings.CONDUET_DATA_QUERY_MAX_ROWS = 4
    assert run(conversation, "SELECT * FROM sales LIMIT 4").num_rows == 4
    assert refused(conversation, "SELECT * FROM sales") == (
        "The result has more than 4 rows (CONDUET_DATA_QUERY_MAX_ROWS); it was refused, not truncated. Aggregate "
        "it, filter it or add a LIMIT.")
    settings.CONDUET_DATA_QUERY_MAX_ROWS = 1000
    assert "more than 1000 rows" in refused(conversation, "SELECT * FROM range(100000000)")


def test_an_unreadable_parquet_fails_without_naming_its_path(conversation, settings):
    frame = DataFrame.objects.get(name="sales")
    with frame_local_path(frame) as path:
        with open(path, "wb") as parquet:
            parquet.write(b"PAR1 not a parquet file at all PAR1")
    message = refused(conversation, "SELECT * FROM sales")
    assert path not in message and str(settings.MEDIA_ROOT) not in message and "conversations/" not in message


def test_the_sandbox_takes_memory_and_threads_from_the_settings_and_has_no_file_access(settings):
    settings.CONDUET_DATA_QUERY_MEMORY_MB, settings.CONDUET_DATA_QUERY_THREADS = 64, 1
    con = sandbox()
    try:
        threads, memory, external = con.execute(
            "SELECT current_setting('threads'), current_setting('memory_limit'), "
            "current_setting('enable_external_access')").fetchone()
        assert (threads, external) == (1, False) and memory.startswith("61.0 MiB")
        with pytest.raises(duckdb.PermissionException):  # the second layer, under the syntax check
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
    finally:
        con.close()


def test_sample_rows_survive_an_empty_result(conversation):
    frame = run(conversation, "SELECT * FROM sales WHERE amount < 0")
    assert frame.num_rows == 0 and frame_payload(frame)["sampleRows"] == []
    assert frames_describe(conversation_id=conversation.id)[-1] == {
        "name": "result", "numRows": 0, "columns": frame.columns, "sampleRows": []}
    with frame_local_path(frame) as path:
        assert pq.read_table(path).num_rows == 0
