"""What the spec builder compiles once per process and shares: compiled templates by source, compiled workflows by
content. Both are immutable, so a cache entry never goes stale; the caches are LRUs, so entries only age out."""
import hashlib
import marshal
import threading
from collections import OrderedDict
from typing import Any

from agents.runtime.templates import Expression, Template


class Lru:
    """A thread-safe LRU map; `None` is never stored (it means "not there")."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def content_digest(value) -> bytes | None:
    """A digest of JSON data, to key what was compiled from it; None when it cannot be taken (what holds it is then
    compiled, never cached). `marshal` (format 2: no back-references, so the bytes depend on the values alone, not
    on which objects happen to be shared) is several times faster than `json.dumps` over the thousands of steps of
    a large project, and tells `1`, `1.0` and `true` apart. Equal data built differently (a string interned in one
    and not the other) may digest differently: a cache miss, never a wrong hit, since the bytes decode to the
    value."""
    try:
        raw = marshal.dumps(value, 2)
    except ValueError:
        return None
    return hashlib.blake2b(raw, digest_size=16).digest()


# A compiled workflow: its JSON and the set of the document's workflow ids (a jump names one) → `Workflow`.
WORKFLOWS = Lru(2048)
# A compiled template or expression: (kind, source) → `Template` / `Expression`. A Jinja compilation costs about a
# millisecond; a large project holds thousands of templates, most of them unchanged by any one write.
TEMPLATES = Lru(8192)


def compiled(kind: type[Template] | type[Expression], source: Any, where: str) -> Template | Expression:
    """A template or expression compiled once per process for each source text (they are immutable and hold no
    location), so that validating a document compiles only the texts it has not seen. A fault is raised naming
    `where`, and never cached."""
    if not isinstance(source, str):
        return kind(source, where)  # raises, naming where
    key = (kind.__name__, source)
    found = TEMPLATES.get(key)
    if found is None:
        found = kind(source, where)
        TEMPLATES.put(key, found)
    return found
