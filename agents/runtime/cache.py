"""What the spec builder compiles once per process and shares: compiled templates by source, compiled workflows by
content. Both are immutable, so a cache entry never goes stale; the caches are LRUs, so entries only age out."""
import hashlib
import json
import threading
from collections import OrderedDict


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


def json_digest(value) -> bytes | None:
    """A digest of JSON data; None when it is not JSON (what holds it is then compiled, never cached)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# A compiled workflow: its JSON and the set of the document's workflow ids (a jump names one) → `Workflow`.
WORKFLOWS = Lru(2048)
# A compiled template or expression: (kind, source) → `Template` / `Expression`. A Jinja compilation costs about a
# millisecond; a large project holds thousands of templates, most of them unchanged by any one write.
TEMPLATES = Lru(8192)
