"""ASGI entry point (daphne). HTTP goes to Django, with static files (admin, API docs) served by Django's own
ASGI static handler, so a first run needs no web server in front; websockets (the live admin view) plug in here
later."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from config.checks import server_start_refusal  # noqa: E402  (reads the settings loaded above)

server_start_refusal()  # no server on the published development SECRET_KEY outside development

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs the app registry loaded)
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.api.body_limit import BodyLimit, twisted_form_parsing_off  # noqa: E402

twisted_form_parsing_off()  # daphne's Twisted would otherwise read every multipart body whole (body_limit.py)
application = ProtocolTypeRouter({"http": BodyLimit(ASGIStaticFilesHandler(django_asgi_app))})

# A process holding a thousand open streams allocates steadily (every chunk is a few objects); with the default
# thresholds its garbage collector ran full passes of 0.5–0.85 s that stalled the event loop, 30–45% of its time
# (the streaming benchmark, tests/bench/llm.py). What was loaded at start-up (Django, the SDKs) is frozen out of
# every collection, and the young generation is collected less often.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 20, 100)
