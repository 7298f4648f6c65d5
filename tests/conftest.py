"""Shared fixtures: API clients holding real keys, the demo project, and rows from factories."""
import pytest
from rest_framework.test import APIClient

from agents.demo import DEMO_PROJECT
from agents.models import ProjectApiKey
from agents.selectors import spec_cache
from agents.services import developer_token_create, project_api_key_create, project_create, version_publish
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, WorkspaceFactory

# Real servers on loopback: an HTTP tool endpoint, an OpenAI-compatible model and embeddings endpoint, an MCP server.
pytest_plugins = ["tests.fakes.tool_server", "tests.fakes.llm_server", "tests.fakes.mcp_server",
                  "tests.fakes.embeddings_server"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Stored bytes (knowledge-base uploads, later conversation files) go to a directory of the test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CONDUET_FRAME_CACHE_DIR = str(tmp_path / "frame-cache")  # the frames' local Arrow copies, too


@pytest.fixture(autouse=True)
def _django_connection_for_turns(settings):
    """In-process tests run the turn's SQL on Django's connection, inside the test's transaction (config/db.py);
    the daphne processes that the `server` tests start use psycopg's async pool on PostgreSQL, as production does."""
    settings.CONDUET_DB_ASYNC_POOL = False


@pytest.fixture(autouse=True)
def _fresh_caches(request):
    """Each test starts with no cached specs and, when it uses the database, no rate-limit counts (the cache is the
    database or Redis, shared by the tests and by a daphne process they start)."""
    spec_cache.clear()
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if uses_db:
        from django.core.cache import cache

        request.getfixturevalue("db")  # opens database access in the mode (transactional or not) the test asked
        cache.clear()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def user(workspace):
    member = MembershipFactory(workspace=workspace)
    return member.user


@pytest.fixture
def demo_project(workspace):
    return project_create(workspace=workspace, name=DEMO_PROJECT["name"], document=DEMO_PROJECT)


@pytest.fixture
def published_demo(demo_project):
    version_publish(project=demo_project, name="v1")
    demo_project.refresh_from_db()
    return demo_project


@pytest.fixture
def project_key(demo_project):
    _row, key = project_api_key_create(project=demo_project, name="server")
    return key


@pytest.fixture
def widget_key(demo_project):
    _row, key = project_api_key_create(project=demo_project, name="widget", scope=ProjectApiKey.Scope.WIDGET)
    return key


@pytest.fixture
def developer_token(user):
    _row, key = developer_token_create(user=user, name="dev")
    return key


@pytest.fixture
def api():
    """An unauthenticated DRF test client; `client_for(key)` gives an authenticated one."""
    return APIClient()


@pytest.fixture
def client_for():
    def make(key: str, **headers) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", **headers)
        return client

    return make


@pytest.fixture
def developer(developer_token, client_for):
    """A client with a developer token of the user of the demo project's workspace."""
    return client_for(developer_token)


@pytest.fixture
def server_client(project_key, client_for):
    """A client with a server key of the demo project."""
    return client_for(project_key)


@pytest.fixture
def other_project(db):
    return ProjectFactory()


@pytest.fixture
def stranger():
    return UserFactory()


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a daphne process serving the test database (and the fake servers on loopback)."""
    from django.db import connections

    from tests.live import database_url

    return {"DATABASE_URL": database_url(connections["default"].settings_dict), "LOG_LEVEL": "WARNING",
            "CONDUET_DB_POOL_MIN": "0", "CONDUET_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "CONDUET_MEDIA_ROOT": _server_media_root(), **extra}


def _server_media_root() -> str:
    """The stored bytes of the test run's daphne processes: a temporary directory, not the checkout's media/ (which
    had gathered a gigabyte of files whose rows the test databases no longer held)."""
    import atexit
    import shutil
    import tempfile

    global _SERVER_MEDIA
    if _SERVER_MEDIA is None:
        _SERVER_MEDIA = tempfile.mkdtemp(prefix="conduet-test-media-")
        atexit.register(shutil.rmtree, _SERVER_MEDIA, True)
    return _SERVER_MEDIA


_SERVER_MEDIA: str | None = None


@pytest.fixture(scope="session")
def daphne_url(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real daphne process serving the test database (tests using it need `transactional_db`, so that what
    they write is committed and visible to the server)."""
    from tests.live import daphne_server

    with daphne_server(env=server_env(), log_path=tmp_path_factory.mktemp("daphne") / "daphne.log") as url:
        yield url


@pytest.fixture(scope="session")
def second_daphne_url(django_db_setup, django_db_blocker, tmp_path_factory):
    """Another daphne process on the same database (and Redis): for what must work across processes."""
    from tests.live import daphne_server

    with daphne_server(env=server_env(), log_path=tmp_path_factory.mktemp("daphne2") / "daphne.log") as url:
        yield url


@pytest.fixture
def slow_project(workspace, tool_server, settings):
    """A project whose launch says a line, then calls a 5 s HTTP tool (allowed on loopback)."""
    from tests.turns import slow_document

    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    return project_create(workspace=workspace, name="Slow", document=slow_document(tool_server.url))
