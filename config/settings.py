"""Conduet settings: everything comes from environment variables (see README "Configuration")."""
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_json, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Security
DEBUG = env_bool("DEBUG", False)
# `manage.py rundemo` and the tests' servers set it: the server may then start on the development SECRET_KEY.
CONDUET_DEVELOPMENT = env_bool("CONDUET_DEVELOPMENT", False)
# /demo/orders/<id>: the invented order service Acme Copilot's tool calls (agents/demo_api.py); on for rundemo.
CONDUET_DEMO_API = env_bool("CONDUET_DEMO_API", DEBUG or CONDUET_DEVELOPMENT)
# Published in this file, so anyone can forge sessions signed with it: the ASGI application refuses to start on
# it unless DEBUG or CONDUET_DEVELOPMENT is on (config/asgi.py), and `check --deploy` flags it (config/checks.py).
# Settings still load without SECRET_KEY, so that management commands and the tests need no configuration.
DEVELOPMENT_SECRET_KEY = "conduet-insecure-development-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("CONDUET_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set")
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS: all off by default, as a first run is plain HTTP on loopback; a deployment behind TLS turns them on.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers probe over plain HTTP
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)


def _proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto` or `X-Forwarded-Proto=https` → Django's ("HTTP_X_FORWARDED_PROTO", "https"). Only for a
    proxy that always sets (or strips) that header: otherwise clients could claim HTTPS."""
    if not raw.strip():
        return None
    name, _sep, value = raw.partition("=")
    name = name.strip().upper().replace("-", "_")
    if not name.replace("_", "").isalnum():
        raise ImproperlyConfigured(f"SECURE_PROXY_SSL_HEADER must be a header name like X-Forwarded-Proto, got {raw!r}")
    return (name if name.startswith("HTTP_") else f"HTTP_{name}", value.strip() or "https")


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER"))

# Admin login attempts per minute, per client address and per username (agents/admin.py).
CONDUET_ADMIN_LOGIN_RATE_PER_ADDRESS = env_int("CONDUET_ADMIN_LOGIN_RATE_PER_ADDRESS", 10, minimum=1)
CONDUET_ADMIN_LOGIN_RATE_PER_USERNAME = env_int("CONDUET_ADMIN_LOGIN_RATE_PER_USERNAME", 5, minimum=1)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "agents",
    "conversations",
    "files",
    "django_tasks",
    "django_tasks_db",
]

# Django's own, but those only the admin's pages need run for /admin only (config/middleware.py).
MIDDLEWARE = [
    "config.middleware.SecurityMiddleware",
    "config.api.middleware.ApiResponseMiddleware",
    "config.middleware.SessionMiddleware",
    "config.middleware.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
    "config.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: DATABASE_URL, defaulting to an embedded SQLite file in WAL mode.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'conduet.sqlite3'}")
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock up front so that two
        # writers queue on busy_timeout instead of failing with "database is locked" on lock upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that a daphne process started by the tests sees the test database.
    _db["TEST"] = {"NAME": env_str("CONDUET_TEST_SQLITE", str(BASE_DIR / ".test.sqlite3"))}
elif _db["ENGINE"] == "django.db.backends.postgresql" and env_bool("CONDUET_DB_POOL", True):
    # psycopg 3's pool for Django's own (sync) connections: the admin, DRF views, management commands. Django
    # has the pool check each connection when it is taken, so a restarted PostgreSQL costs no request.
    _db["OPTIONS"] = {
        "pool": {
            "min_size": env_int("CONDUET_DB_POOL_MIN", 2, minimum=0),
            "max_size": env_int("CONDUET_DB_POOL_MAX", 20, minimum=1),
            "timeout": 10,
        }
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The turn's statements (config/db.py) run on psycopg's async pool on PostgreSQL; off, they use Django's connection
# in asgiref's sync thread (the in-process tests turn it off so that they see their own transaction).
CONDUET_DB_ASYNC_POOL = env_bool("CONDUET_DB_ASYNC_POOL", True)
CONDUET_DB_POOL_MIN = env_int("CONDUET_DB_POOL_MIN", 2, minimum=0)
CONDUET_DB_POOL_MAX = env_int("CONDUET_DB_POOL_MAX", 20, minimum=1)
CONDUET_DB_POOL_TIMEOUT = env_int("CONDUET_DB_POOL_TIMEOUT", 10, minimum=1)

# --- Redis (REDIS_URL): rate-limit counters, the turns' event logs and stop signals, the channel layer. Without it
# the database does all three, so that every process still shares them.
REDIS_URL = env_str("REDIS_URL")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "conduet_cache",
                      "OPTIONS": {"MAX_ENTRIES": 100_000}}}
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1}}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL], "prefix": "conduet:channels:"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = False
SILENCED_SYSTEM_CHECKS = [
    "django_ratelimit.W001",  # the database cache is shared by all processes, unlike locmem
    # "Security / X-Frame-Options / CSRF middleware missing": ours extend them (config/middleware.py), and
    # config/checks.py runs Django's checks of their settings on our classes.
    "security.W001", "security.W002", "security.W003",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# JSON bodies over 1 MiB are 413 (API.md §1).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["agents.authentication.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["agents.authentication.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.ratelimit.PerKeyThrottle"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Conduet API",
    "DESCRIPTION": "Self-hosted conversational agents. The contract is shared/API.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from this server (drf-spectacular-sidecar): a self-hosted install needs no CDN.
    # Two "status" fields with different choices: name their enums rather than let drf-spectacular guess.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": ["active", "ended", "handoff"],
        "StoppedTurnStatusEnum": ["interrupted", "complete", "failed", "stopping"],
        "ToolKindEnum": ["http", "mcp"],
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.close_request_bodies",
    ],
}

# --- Conduet
CONDUET_API_RATE_PER_MINUTE = env_int("CONDUET_API_RATE_PER_MINUTE", 1200, minimum=1)
CONDUET_INTERACT_RATE_PER_MINUTE = env_int("CONDUET_INTERACT_RATE_PER_MINUTE", 60, minimum=1)
CONDUET_TURN_WAIT_SECONDS = env_int("CONDUET_TURN_WAIT_SECONDS", 10, minimum=0)
CONDUET_SSE_PING_SECONDS = env_int("CONDUET_SSE_PING_SECONDS", 15, minimum=1)
# A turn's lease lasts this long and is renewed every third of it while the turn runs: a turn whose process died
# frees its conversation within this time.
CONDUET_LEASE_SECONDS = env_int("CONDUET_LEASE_SECONDS", 15, minimum=3)
CONDUET_TURN_TIMEOUT_SECONDS = env_int("CONDUET_TURN_TIMEOUT_SECONDS", 120, minimum=1)
# How often a running turn looks for a stop asked on another process; how long POST …/interact/stop waits for it.
CONDUET_STOP_POLL_SECONDS = env_float("CONDUET_STOP_POLL_SECONDS", 0.25, minimum=0.01)
CONDUET_STOP_WAIT_SECONDS = env_float("CONDUET_STOP_WAIT_SECONDS", 5.0, minimum=0)
# How long a running turn's events stay only in its process before they are written to the shared event log: a
# turn faster than this never writes it, and replays from its stored reply. Long enough that a turn slowed only by
# a busy process does not write it (at 20 ms every turn did under load, at 250 ms many did at concurrency 32);
# a client resuming elsewhere gets a running turn's first events at most this late, the later ones as they come.
CONDUET_EVENT_FLUSH_SECONDS = env_float("CONDUET_EVENT_FLUSH_SECONDS", 1.0, minimum=0)
CONDUET_EVENT_TTL_SECONDS = env_int("CONDUET_EVENT_TTL_SECONDS", 3600, minimum=60)
# Widget keys are public: besides the per-user limit, their interact calls are capped per key and per address.
CONDUET_WIDGET_RATE_PER_KEY = env_int("CONDUET_WIDGET_RATE_PER_KEY", 600, minimum=1)
CONDUET_WIDGET_RATE_PER_ADDRESS = env_int("CONDUET_WIDGET_RATE_PER_ADDRESS", 60, minimum=1)
# /metrics answers only these networks (Prometheus text).
CONDUET_METRICS_ALLOWLIST = env_list("CONDUET_METRICS_ALLOWLIST", ["127.0.0.0/8", "::1/128"])
# The model (agents/llm.py): any OpenAI-compatible chat-completions endpoint. No base URL: no model, and every path
# that needs one says so. The project's `model` overrides the name, temperature and max tokens.
CONDUET_LLM_BASE_URL = env_str("CONDUET_LLM_BASE_URL")
CONDUET_LLM_API_KEY = env_str("CONDUET_LLM_API_KEY")
CONDUET_LLM_MODEL = env_str("CONDUET_LLM_MODEL")
CONDUET_LLM_TIMEOUT_SECONDS = env_float("CONDUET_LLM_TIMEOUT_SECONDS", 60.0, minimum=1)  # per attempt; read gaps too
CONDUET_LLM_MAX_RETRIES = env_int("CONDUET_LLM_MAX_RETRIES", 2, minimum=0)  # on 429, 5xx and connection errors
# Connections to the model per process: each streamed reply holds one for its whole length.
CONDUET_LLM_MAX_CONNECTIONS = env_int("CONDUET_LLM_MAX_CONNECTIONS", 10_000, minimum=1)
# The agent loop (agents/runtime/agentic.py): tool rounds per turn, and the history's token budget.
CONDUET_AGENT_MAX_TOOL_ROUNDS = env_int("CONDUET_AGENT_MAX_TOOL_ROUNDS", 8, minimum=1)
CONDUET_AGENT_HISTORY_TOKENS = env_int("CONDUET_AGENT_HISTORY_TOKENS", 8000, minimum=100)
# Tool secrets (header values) are encrypted at rest with these Fernet keys (agents/secrets.py); the first encrypts,
# all decrypt (rotation). Unset: a key derived from SECRET_KEY.
CONDUET_SECRET_KEYS = env_list("CONDUET_SECRET_KEYS", [])
CONDUET_MCP_CACHE_SECONDS = env_int("CONDUET_MCP_CACHE_SECONDS", 300, minimum=0)  # how long an MCP tool list is kept
CONDUET_OUTBOUND_ALLOWLIST = env_list("CONDUET_OUTBOUND_ALLOWLIST", [])

# --- Knowledge base (agents/knowledge/). Documents are processed off the request path by `manage.py worker`
# (django-tasks' database backend: the same queue on SQLite and PostgreSQL).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
MEDIA_ROOT = Path(env_str("CONDUET_MEDIA_ROOT", str(BASE_DIR / "media")))
# Uploads (and fetched pages) larger than this are refused: 413 for an upload, `failed` for a URL.
CONDUET_KB_MAX_DOCUMENT_BYTES = env_int("CONDUET_KB_MAX_DOCUMENT_BYTES", 20 * 1024 * 1024, minimum=1024)
CONDUET_KB_FETCH_TIMEOUT_SECONDS = env_float("CONDUET_KB_FETCH_TIMEOUT_SECONDS", 20.0, minimum=1)
# Chunks are about this many words, and each repeats the last words of the one before it.
CONDUET_KB_CHUNK_WORDS = env_int("CONDUET_KB_CHUNK_WORDS", 180, minimum=20)
CONDUET_KB_CHUNK_OVERLAP_WORDS = env_int("CONDUET_KB_CHUNK_OVERLAP_WORDS", 30, minimum=0)
# A document being processed holds a lease renewed at each stage; a worker that died leaves it to be taken up
# again by any worker once the lease has run out.
CONDUET_KB_LEASE_SECONDS = env_int("CONDUET_KB_LEASE_SECONDS", 120, minimum=1)
CONDUET_KB_MAX_ATTEMPTS = env_int("CONDUET_KB_MAX_ATTEMPTS", 3, minimum=1)
# Embeddings: any OpenAI-compatible /embeddings endpoint. No base URL: the knowledge base is lexical only.
CONDUET_EMBEDDINGS_BASE_URL = env_str("CONDUET_EMBEDDINGS_BASE_URL")
CONDUET_EMBEDDINGS_API_KEY = env_str("CONDUET_EMBEDDINGS_API_KEY")
CONDUET_EMBEDDINGS_MODEL = env_str("CONDUET_EMBEDDINGS_MODEL", "text-embedding-3-small")
CONDUET_EMBEDDINGS_BATCH_SIZE = env_int("CONDUET_EMBEDDINGS_BATCH_SIZE", 64, minimum=1)
CONDUET_EMBEDDINGS_TIMEOUT_SECONDS = env_float("CONDUET_EMBEDDINGS_TIMEOUT_SECONDS", 30.0, minimum=1)
CONDUET_EMBEDDINGS_MAX_RETRIES = env_int("CONDUET_EMBEDDINGS_MAX_RETRIES", 3, minimum=0)

# --- Files and data frames (files/, the v2 API). Bytes go to Django's storage: the file system under MEDIA_ROOT by
# default; CONDUET_STORAGE_BACKEND names any other backend (a django-storages class, say) with its options as JSON.
CONDUET_STORAGE_BACKEND = env_str("CONDUET_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
CONDUET_STORAGE_OPTIONS = env_json("CONDUET_STORAGE_OPTIONS", {})
STORAGES = {
    "default": {"BACKEND": CONDUET_STORAGE_BACKEND, "OPTIONS": CONDUET_STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CONDUET_FILE_MAX_BYTES = env_int("CONDUET_FILE_MAX_BYTES", 25 * 1024 * 1024, minimum=1024)  # a file of an upload
CONDUET_FILE_MAX_COUNT = env_int("CONDUET_FILE_MAX_COUNT", 10, minimum=1)  # files of one upload request
# SQL over a conversation's frames (files/sql.py, DuckDB with no file system or network access): the most rows a
# result frame keeps, the time a query may run, and the memory and threads it may use.
CONDUET_DATA_QUERY_MAX_ROWS = env_int("CONDUET_DATA_QUERY_MAX_ROWS", 1_000_000, minimum=1)
CONDUET_DATA_QUERY_TIMEOUT_SECONDS = env_float("CONDUET_DATA_QUERY_TIMEOUT_SECONDS", 10.0, minimum=0.1)
CONDUET_DATA_QUERY_MEMORY_MB = env_int("CONDUET_DATA_QUERY_MEMORY_MB", 512, minimum=16)
CONDUET_DATA_QUERY_THREADS = env_int("CONDUET_DATA_QUERY_THREADS", 2, minimum=1)
# Ordered pages of large frames read a memory-mapped Arrow copy of the frame's Parquet (files/frame_cache.py), made on
# first use in this local directory and kept within this size (least recently used first out; 0 turns it off).
# Empty: <temporary directory>/conduet-frames/<a digest of the database settings>.
CONDUET_FRAME_CACHE_DIR = env_str("CONDUET_FRAME_CACHE_DIR", "")
CONDUET_FRAME_CACHE_MB = env_int("CONDUET_FRAME_CACHE_MB", 4096, minimum=0)
# What a killed process leaves behind (files/sweep.py): uploads are parsed into, and tables spooled through, this local
# directory (Django's FILE_UPLOAD_TEMP_DIR, made if missing); its entries, and stored bytes under conversations/ that no
# row names, are removed once older than CONDUET_FILES_SWEEP_AGE_SECONDS — by `manage.py worker` every
# CONDUET_FILES_SWEEP_INTERVAL_SECONDS (0: never) and by `manage.py files_sweep`.
FILE_UPLOAD_TEMP_DIR = env_str("CONDUET_UPLOAD_TEMP_DIR", "") or str(Path(tempfile.gettempdir()) / "conduet-uploads")
CONDUET_FILES_SWEEP_AGE_SECONDS = env_float("CONDUET_FILES_SWEEP_AGE_SECONDS", 3600.0, minimum=60.0)
CONDUET_FILES_SWEEP_INTERVAL_SECONDS = env_float("CONDUET_FILES_SWEEP_INTERVAL_SECONDS", 600.0, minimum=0.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # httpx logs each request's URL at INFO, query included: a tool's arguments (emails…) would reach the logs.
        "httpx": {"level": "WARNING"},
    },
}
