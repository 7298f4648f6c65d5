"""Reads on projects for the runtime: the frozen AgentSpec of a version, cached in process."""
import threading
from collections import OrderedDict

from agents.models import Project, ProjectVersion
from agents.runtime import AgentSpec
from config.api.errors import NotFound

DEVELOPMENT = "development"
PRODUCTION = "production"
_CACHE_SIZE = 512


class _SpecCache:
    """A small LRU of built specs. Keys name an immutable definition (a version id, or the development document
    at one `updated_at`), so an entry never goes stale; it only ages out."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        spec = build()
        with self._lock:
            self._items[key] = spec
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return spec

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


spec_cache = _SpecCache(_CACHE_SIZE)


def agent_spec_get(*, project: Project, version: str = DEVELOPMENT) -> tuple[AgentSpec, str]:
    """The spec to run for `version` (development, production or a version id) and the resolved version id."""
    if version == DEVELOPMENT:
        key = (project.id, DEVELOPMENT, project.updated_at.isoformat())
        spec = spec_cache.get_or_build(
            key, lambda: AgentSpec.from_document(project.as_document(), project_id=project.id, version_id=DEVELOPMENT)
        )
        return spec, DEVELOPMENT
    version_id = project.production_version_id if version == PRODUCTION else version
    if version_id is None:
        raise NotFound("This project has no production version yet; publish one first.")

    def build() -> AgentSpec:
        row = ProjectVersion.objects.filter(project=project, id=version_id).only("snapshot").first()
        if row is None:
            raise NotFound(f"Version {version} not found.")
        return AgentSpec.from_document(row.snapshot, project_id=project.id, version_id=version_id)

    return spec_cache.get_or_build((project.id, version_id), build), version_id
