"""The project's settings plus the benchmark's baseline view (tests/bench/urls.py)."""
from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.urls"
