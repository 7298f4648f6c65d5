"""files/sweep.py and `manage.py files_sweep`: what a killed process leaves behind — temporary upload files, stored
bytes no row names, directories of deleted conversations — goes once it is old enough; uploads in flight (young) and
everything a row names stay. The last tests kill a real daphne process mid-upload."""
import os
import threading
import time
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction

from agents.models import Project
from agents.services import projects_delete
from conversations.models import Conversation
from conversations.services import conversation_v2_create, conversations_delete
from files import frame_cache
from files.models import DataFrame, StoredFile
from files.services import files_upload
from files.sweep import files_sweep, storage_sweep, temp_sweep
from tests.conftest import server_env
from tests.factories import ProjectFactory
from tests.live import daphne_process

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600.0
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _upload_dir(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")


@pytest.fixture
def conversation():
    return conversation_v2_create(agent=ProjectFactory(), name="Sweep")


def stored(conversation_id: str, sub: str, name: str, *, age: float = 0.0) -> str:
    """Bytes written straight to storage, as an upload killed before its row committed leaves them."""
    name = default_storage.save(f"conversations/{conversation_id}/{sub}/{name}", ContentFile(b"orphan"))
    aged(Path(default_storage.path(name)), age)
    return name


def aged(path: Path, age: float) -> Path:
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def upload(conversation) -> StoredFile:
    return files_upload(conversation=conversation,
                        uploads=[SimpleUploadedFile("sales.csv", b"region,amount\nnorth,3\nsouth,4\n")])[0]


def all_names(prefix: str) -> set[str]:
    if not default_storage.exists(prefix):
        return set()
    dirs, names = default_storage.listdir(prefix)
    found = {f"{prefix}/{name}" for name in names}
    for sub in dirs:
        found |= all_names(f"{prefix}/{sub}")
    return found


def test_old_orphans_go_young_ones_and_named_bytes_stay(conversation):
    file = upload(conversation)
    frame = DataFrame.objects.get(file=file)
    for name in (file.stored_name, frame.stored_name):  # bytes a row names stay however old they are
        aged(Path(default_storage.path(name)), 2 * HOUR)
    old_file = stored(conversation.id, "files", "file_old.csv", age=2 * HOUR)
    old_frame = stored(conversation.id, "frames", "df_old.parquet", age=2 * HOUR)
    in_flight = stored(conversation.id, "files", "file_new.csv", age=60)  # its row has not committed yet
    other = stored(conversation.id, "notes", "kept.txt", age=2 * HOUR)  # only files/ and frames/ are swept

    assert sorted(storage_sweep(older_than=HOUR)) == sorted([old_file, old_frame])

    assert all_names(f"conversations/{conversation.id}") == {file.stored_name, frame.stored_name, in_flight, other}


def test_the_directory_of_a_conversation_that_no_longer_exists_goes_whatever_its_age(conversation):
    upload(conversation)
    Conversation.objects.filter(id=conversation.id).delete()  # bypassing the services: its bytes stay behind
    stored(conversation.id, "files", "file_young.csv")
    live = conversation_v2_create(agent=conversation.project, name="Live")
    kept = upload(live)

    assert storage_sweep(older_than=HOUR) == [f"conversations/{conversation.id}/"]

    assert not default_storage.exists(f"conversations/{conversation.id}")
    assert all_names(f"conversations/{live.id}") == {kept.stored_name,
                                                     DataFrame.objects.get(file=kept).stored_name}


def test_a_deleted_conversations_whole_directory_goes_on_commit(conversation):
    upload(conversation)
    orphan = stored(conversation.id, "files", "file_orphan.csv")  # no row: the deletes of rows' names missed it
    with transaction.atomic():
        conversations_delete(conversations=Conversation.objects.filter(id=conversation.id))
        assert default_storage.exists(orphan)  # nothing goes before the commit
    assert not default_storage.exists(f"conversations/{conversation.id}")


def test_a_rolled_back_delete_keeps_the_bytes(conversation):
    file = upload(conversation)
    with pytest.raises(RuntimeError), transaction.atomic():
        conversations_delete(conversations=Conversation.objects.filter(id=conversation.id))
        raise RuntimeError("rolled back")
    assert default_storage.exists(file.stored_name)


def test_a_deleted_projects_conversations_directories_go_on_commit(conversation):
    upload(conversation)
    stored(conversation.id, "frames", "df_orphan.parquet")
    projects_delete(projects=Project.objects.filter(id=conversation.project_id))
    assert not default_storage.exists(f"conversations/{conversation.id}")


def test_stale_temporary_uploads_go_fresh_ones_stay(settings, tmp_path):
    uploads = Path(settings.FILE_UPLOAD_TEMP_DIR)
    uploads.mkdir()
    stale = uploads / "tmpabc.upload.csv"  # Django's TemporaryUploadedFile of a killed request
    stale.write_bytes(b"x")
    aged(stale, 2 * HOUR)
    sheets = uploads / "conduet-sheets-abc"  # the spreadsheet reader's directory
    sheets.mkdir()
    (sheets / "manifest.json").write_text("{}")
    aged(sheets, 2 * HOUR)
    fresh = uploads / "tmpdef.upload.csv"
    fresh.write_bytes(b"y")
    cache = frame_cache.cache_dir()
    cache.mkdir(parents=True)
    building = cache / ".building-abc.arrow"  # an Arrow copy whose build was killed
    building.write_bytes(b"z")
    aged(building, 2 * HOUR)

    assert sorted(temp_sweep(older_than=HOUR)) == sorted([str(stale), str(sheets), str(building)])
    assert [p.name for p in uploads.iterdir()] == [fresh.name]


def test_the_upload_directory_is_made_when_missing(settings, conversation):
    assert not os.path.exists(settings.FILE_UPLOAD_TEMP_DIR)
    assert temp_sweep(older_than=HOUR) == []
    assert os.path.isdir(settings.FILE_UPLOAD_TEMP_DIR)


def test_the_command_prints_what_it_removed(settings, conversation):
    orphan = stored(conversation.id, "files", "file_orphan.csv", age=10)
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    temporary = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpx.upload.csv"
    temporary.touch()
    aged(temporary, 10)

    out = StringIO()
    call_command("files_sweep", stdout=out)  # the default age: an hour
    assert out.getvalue() == "Removed 0 stored names and 0 temporary entries older than 3600 s.\n"

    out = StringIO()
    call_command("files_sweep", "--older-than", "5", stdout=out)
    assert out.getvalue().splitlines() == [f"storage: {orphan}", f"temporary: {temporary}",
                                           "Removed 1 stored names and 1 temporary entries older than 5 s."]
    assert not default_storage.exists(orphan) and not temporary.exists()


def test_the_worker_sweeps_at_start(settings, conversation, monkeypatch):
    """`manage.py worker`'s sweep thread: a sweep at once, then one every interval until told to stop."""
    from agents.management.commands import worker

    settings.CONDUET_FILES_SWEEP_INTERVAL_SECONDS = 0.05
    orphan = stored(conversation.id, "files", "file_orphan.csv", age=2 * HOUR)
    calls = []
    monkeypatch.setattr(worker, "close_old_connections", lambda: calls.append(1))
    monkeypatch.setattr(worker.connection, "close", lambda: None)  # the test's own connection
    stop = threading.Event()
    thread = threading.Thread(target=worker._sweep_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(10)
    assert len(calls) >= 3 and not thread.is_alive()
    assert not default_storage.exists(orphan)


# --- A real daphne process killed (SIGKILL) in the middle of a 20 MiB upload.

def csv_body(boundary: str = "b0undary") -> bytes:
    rows = b"".join(b"%d,north,%d.25,some text to make the row longer\n" % (i, i) for i in range(420_000))
    assert len(rows) > 20 * MIB
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n").encode() + b"id,region,amount,note\n" + rows + \
        f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.server
@pytest.mark.parametrize("kill_when", ["parsed", "stored"])
def test_a_daphne_killed_mid_upload_leaves_nothing_after_a_sweep(settings, tmp_path, demo_project, project_key,
                                                                 kill_when):
    """Killed once the upload's temporary file exists (its table being read), or once its bytes are in storage
    (before its rows commit): a sweep then leaves the temporary directory empty and storage holding only what rows
    name."""
    media, uploads = tmp_path / "server-media", tmp_path / "server-uploads"
    settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR = media, str(uploads)  # this process sweeps what it left
    conversation = conversation_v2_create(agent=demo_project, name="Killed")
    files_dir = media / "conversations" / conversation.id / "files"
    env = server_env(CONDUET_MEDIA_ROOT=str(media), CONDUET_UPLOAD_TEMP_DIR=str(uploads))
    body = csv_body()
    with daphne_process(env=env, log_path=tmp_path / "daphne.log") as (base_url, process):
        url = (f"{base_url}/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
               f"{conversation.id}/files")

        def send():
            try:
                httpx.post(url, content=body, timeout=60, headers={
                    "Authorization": f"Bearer {project_key}", "Content-Type": "multipart/form-data; boundary=b0undary"})
            except httpx.HTTPError:
                pass  # the server died under it

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = (list(uploads.glob("tmp*.upload*")) if kill_when == "parsed"
                    else list(files_dir.glob("file_*")) if files_dir.exists() else [])
            if seen or not sender.is_alive():
                break
            time.sleep(0.002)
        process.kill()
        process.wait()
        sender.join(60)
        assert seen, f"the upload ended before it could be killed at {kill_when!r}"
    left = list(uploads.iterdir())
    assert any(".upload" in path.name for path in left)  # what the killed process could not clean up
    if kill_when == "stored":
        assert not StoredFile.objects.exists()  # the bytes were stored, their row never committed
        assert list(files_dir.iterdir())

    files_sweep(older_than=0)

    assert list(uploads.iterdir()) == []
    named = {*StoredFile.objects.values_list("stored_name", flat=True),
             *DataFrame.objects.values_list("stored_name", flat=True)} - {""}
    assert all_names(f"conversations/{conversation.id}") == named


def test_knowledge_bytes_no_document_names_go_once_old(conversation):
    """A knowledge-base upload writes its bytes before its row commits: killed in between, they have no row."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from agents.knowledge.services import document_create_upload
    from files.sweep import knowledge_sweep

    project = conversation.project
    document = document_create_upload(project=project, metadata={}, upload=SimpleUploadedFile(
        "faq.md", b"# FAQ\n\nGift cards never expire.", content_type="text/markdown"))
    aged(Path(default_storage.path(document.stored_path)), 2 * HOUR)
    old = default_storage.save(f"knowledge/{project.id}/doc_killed/manual.pdf", ContentFile(b"orphan"))
    aged(Path(default_storage.path(old)), 2 * HOUR)
    young = default_storage.save(f"knowledge/{project.id}/doc_in_flight/manual.pdf", ContentFile(b"uploading"))

    assert knowledge_sweep(older_than=HOUR) == [old]
    assert not default_storage.exists(old)
    assert default_storage.exists(young) and default_storage.exists(document.stored_path)
