import os
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand

from agents.services import demo_setup

BANNER = """
Conduet is serving the demo agent "{project}" ({project_id}, production {version_id}).

  API key (shown once):  {key}
  Admin:                 {base}/admin/   user {username}, password {password}
  API docs:              {base}/api/docs/

Talk to it:

curl -s -X POST {base}/api/v1/conversations/jane/interact -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" -d '{{"action": {{"type": "launch", "payload": null}}}}'

curl -s -X POST {base}/api/v1/conversations/jane/interact -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" \\
  -d '{{"action": {{"type": "button", "payload": {{"label": "Account help", "value": "account"}}}}}}'

curl -sN -X POST {base}/api/v1/conversations/jane/interact/stream -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" -d '{{"action": {{"type": "text", "payload": "jane@example.com"}}}}'
"""


class Command(BaseCommand):
    help = "Migrates, loads and publishes the demo agent, prints a fresh API key and curl lines, and serves."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="set up and print, but do not start daphne")

    def handle(self, *args, host, port, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        setup = demo_setup()
        self.stdout.write(BANNER.format(
            project=setup.project.name, project_id=setup.project.id, version_id=setup.version.id, key=setup.key,
            base=f"http://{host}:{port}", username=setup.username, password=setup.password,
        ))
        if no_serve:
            return
        self.stdout.flush()
        sys.stdout.flush()
        # rundemo is the development command: its server may run on the development SECRET_KEY (config/checks.py).
        env = {**os.environ, "CONDUET_DEVELOPMENT": "true"}
        os.execvpe(sys.executable, [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
                                    "config.asgi:application"], env)
