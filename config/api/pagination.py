"""Keyset (cursor) pagination: `limit` 1–100 (default 20) and an opaque `next` cursor, stable under inserts."""
import base64
import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from config.api.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    items: list
    next: str | None

    @property
    def has_more(self) -> bool:
        return self.next is not None


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError("limit must be an integer from 1 to 100.", details={"limit": ["Not an integer."]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("limit must be an integer from 1 to 100.", details={"limit": ["Out of range 1–100."]})
    return limit


def _encode(created_at: datetime, pk: str, reverse: bool) -> str:
    raw = json.dumps([created_at.isoformat(), str(pk), reverse]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, pk, reverse = json.loads(raw)
        return datetime.fromisoformat(created_at), str(pk), bool(reverse)
    except (ValueError, TypeError):
        raise ApiError("The next cursor is not valid.", details={"next": ["Invalid cursor."]}) from None


def paginate(queryset: QuerySet, *, limit: int, cursor: str | None, newest_first: bool = False) -> Page:
    """Orders by (created_at, pk) — ascending, or descending for `newest_first` — and returns one page."""
    order = ("-created_at", "-pk") if newest_first else ("created_at", "pk")
    queryset = queryset.order_by(*order)
    if cursor:
        created_at, pk, reverse = _decode(cursor)
        if reverse != newest_first:
            raise ApiError("The next cursor belongs to another listing.", details={"next": ["Invalid cursor."]})
        if newest_first:
            queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
        else:
            queryset = queryset.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk))
    rows = list(queryset[: limit + 1])
    items, more = rows[:limit], len(rows) > limit
    next_cursor = _encode(items[-1].created_at, items[-1].pk, newest_first) if more else None
    return Page(items=items, next=next_cursor)


def page_body(page: Page, data: list) -> dict:
    return {"data": data, "next": page.next, "has_more": page.has_more}
