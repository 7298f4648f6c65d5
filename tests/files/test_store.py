"""files/store.py: where a conversation's bytes live and how they go."""
import os

import polars as pl
import pytest
from django.db import transaction

from conversations.services import conversation_v2_create
from files import frame_cache, frames
from files.models import DataFrame
from files.store import conversations_bytes_delete_on_commit, frame_create, frame_local_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversation():
    return conversation_v2_create(agent=ProjectFactory(), name="Store")


def test_an_error_inside_the_block_is_the_blocks_own(conversation):
    """A `NotImplementedError` raised by the caller's code (polars raises it for some operations) is not taken for
    the storage's "no local path" and re-enters the generator."""
    frame = frame_create(conversation_id=conversation.id, name="t", table=pl.DataFrame({"a": [1]}))
    with pytest.raises(NotImplementedError, match="the caller's"), frame_local_path(frame):
        raise NotImplementedError("the caller's")


def test_deleting_a_frame_on_commit_removes_its_bytes_and_its_local_arrow_copy(conversation, monkeypatch):
    monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)
    frame = frame_create(conversation_id=conversation.id, name="t", table=pl.DataFrame({"a": list(range(50))}))
    frames.frame_slice(frame, order_by=[("a", True)])  # makes the Arrow copy
    assert [p.name.split("-")[0] for p in frame_cache.cache_dir().glob("*.arrow")] == [frame.id]
    with frame_local_path(frame) as path:
        parquet = path

    with transaction.atomic():
        conversations_bytes_delete_on_commit(conversation_ids=[conversation.id])
        DataFrame.objects.filter(id=frame.id).delete()
        assert list(frame_cache.cache_dir().glob("*.arrow"))  # nothing goes before the commit

    assert not list(frame_cache.cache_dir().glob("*.arrow"))
    assert not os.path.exists(parquet)


def test_two_databases_never_share_a_cache_directory(settings):
    settings.CONDUET_FRAME_CACHE_DIR = ""
    database = settings.DATABASES["default"]
    assert frame_cache.cache_dir() == frame_cache.database_cache_dir(database)
    another = frame_cache.database_cache_dir({**database, "NAME": "another"})
    assert another != frame_cache.cache_dir() and another.parent == frame_cache.cache_dir().parent
