"""Keyset pagination (API.md §1): limit 1–100, an opaque cursor, stable while rows are inserted."""
import pytest
from django.utils import timezone

from agents.models import Workspace
from config.api.errors import ApiError
from config.api.pagination import page_body, paginate, parse_limit
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def walk(limit: int, newest_first: bool = False) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = paginate(Workspace.objects.all(), limit=limit, cursor=cursor, newest_first=newest_first)
        pages.append([w.slug for w in page.items])
        if not page.has_more:
            return pages
        cursor = page.next


@pytest.fixture
def workspaces():
    rows = [WorkspaceFactory(slug=f"w{i:02d}") for i in range(7)]
    Workspace.objects.filter(slug__in=["w02", "w03", "w04"]).update(created_at=rows[2].created_at)  # ties
    return sorted(Workspace.objects.all(), key=lambda w: (w.created_at, w.pk))


def test_pages_cover_every_row_once_in_order(workspaces):
    pages = walk(3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == [w.slug for w in workspaces]
    assert sum(walk(3, newest_first=True), []) == [w.slug for w in reversed(workspaces)]


def test_inserts_do_not_shift_the_next_page(workspaces):
    first = paginate(Workspace.objects.all(), limit=3, cursor=None)
    WorkspaceFactory(slug="late")
    Workspace.objects.filter(slug="late").update(created_at=timezone.now())
    second = paginate(Workspace.objects.all(), limit=3, cursor=first.next)
    assert [w.slug for w in second.items] == [w.slug for w in workspaces[3:6]]


def test_page_body_shape(workspaces):
    page = paginate(Workspace.objects.all(), limit=10, cursor=None)
    body = page_body(page, [w.slug for w in page.items])
    assert body == {"data": [w.slug for w in workspaces], "next": None, "has_more": False}


@pytest.mark.parametrize(("raw", "expected"), [(None, 20), ("", 20), ("1", 1), ("100", 100)])
def test_limits(raw, expected):
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", "1.5"])
def test_bad_limits_are_400(raw):
    with pytest.raises(ApiError) as caught:
        parse_limit(raw)
    assert caught.value.details == {"limit": [caught.value.details["limit"][0]]}


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WzFd", "W251bGwsIG51bGwsIGZhbHNlXQ"])
def test_bad_cursors_are_400(workspaces, cursor):
    with pytest.raises(ApiError):
        paginate(Workspace.objects.all(), limit=3, cursor=cursor)


def test_a_cursor_of_the_other_order_is_refused(workspaces):
    page = paginate(Workspace.objects.all(), limit=3, cursor=None)
    with pytest.raises(ApiError):
        paginate(Workspace.objects.all(), limit=3, cursor=page.next, newest_first=True)
