"""Conduet settings: everything comes from environment variables (see README "Configuration")."""
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("CONDUET_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set")
    # A first run on the embedded default needs no configuration; production sets SECRET_KEY.
    SECRET_KEY = "conduet-insecure-development-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.api.middleware.ApiResponseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    # psycopg 3's pool, shared by the threads that run sync views in one daphne process.
    _db["OPTIONS"] = {
        "pool": {
            "min_size": env_int("CONDUET_DB_POOL_MIN", 2, minimum=0),
            "max_size": env_int("CONDUET_DB_POOL_MAX", 20, minimum=1),
            "timeout": 10,
        }
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits): Redis when REDIS_URL is set, else the database, so limits hold across processes.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "conduet_cache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = False
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]  # the database cache is shared by all processes, unlike locmem

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
CONDUET_LLM_BASE_URL = env_str("CONDUET_LLM_BASE_URL")
CONDUET_LLM_API_KEY = env_str("CONDUET_LLM_API_KEY")
CONDUET_OUTBOUND_ALLOWLIST = env_list("CONDUET_OUTBOUND_ALLOWLIST", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False}},
}
