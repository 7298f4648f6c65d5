import os
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from agents.demo import demo_documents_load
from agents.llm import llm_missing
from agents.selectors import agent_spec_get
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

It answers from its help centre ({documents}), quoting the passage and citing it:

curl -s -X POST {base}/api/v1/conversations/sam/interact -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" -d '{{"action": {{"type": "text", "payload": "How do I reset my password?"}}}}'

Beside it, the agentic demo "{copilot}" ({copilot_id}): instructions, two phases, an order-lookup tool served by
this server at {base}/demo/orders/A-1001, set_variable and handoff. {model}

  Its API key (shown once): {copilot_key}

curl -sN -X POST {base}/api/v1/conversations/jane/interact/stream -H "Authorization: Bearer {copilot_key}" \\
  -H "Content-Type: application/json" -d '{{"action": {{"type": "text", "payload": "Where is my order A-1001?"}}}}'

The v2 API: named conversations with files, and a data frame of every uploaded table (CONV: the id created):

curl -s -X POST {base}/tenants/{tenant}/api/v2/agents/{project_id}/conversations -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" -d '{{"name": "Q3 reconciliation"}}'
curl -s -X POST {base}/tenants/{tenant}/api/v2/agents/{project_id}/conversations/CONV/messages \\
  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" -d '{{"content": "How do I reset my password?"}}'
curl -s -X POST {base}/tenants/{tenant}/api/v2/agents/{project_id}/conversations/CONV/files \\
  -H "Authorization: Bearer {key}" -F files=@sales.csv -F files=@invoice.pdf
curl -s "{base}/tenants/{tenant}/api/v2/agents/{project_id}/conversations/CONV/data-frames/sales?limit=5" \\
  -H "Authorization: Bearer {key}"
"""


class Command(BaseCommand):
    help = "Migrates, loads and publishes the demo agent, prints a fresh API key and curl lines, and serves."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="set up and print, but do not start daphne")

    def handle(self, *args, host, port, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        base = f"http://{host}:{port}"
        setup = demo_setup(base_url=base)
        documents = demo_documents_load(project=setup.project)  # processed here: they answer before a worker runs
        missing = llm_missing(agent_spec_get(project=setup.copilot, version="development")[0])
        self.stdout.write(BANNER.format(
            project=setup.project.name, project_id=setup.project.id, version_id=setup.version.id, key=setup.key,
            base=base, username=setup.username, password=setup.password, copilot=setup.copilot.name,
            copilot_id=setup.copilot.id, copilot_key=setup.copilot_key, tenant=setup.project.workspace.slug,
            documents=", ".join(f"{d.name}: {d.status}" for d in documents),
            model=f"\n{missing}" if missing else f"Its model: {settings.CONDUET_LLM_BASE_URL}.",
        ))
        if no_serve:
            return
        self.stdout.flush()
        sys.stdout.flush()
        # rundemo is the development command: its server may run on the development SECRET_KEY (config/checks.py).
        # The copilot's tool calls this very server (/demo/orders/…): its address is allowed for outbound calls.
        allowlist = ",".join(filter(None, [os.environ.get("CONDUET_OUTBOUND_ALLOWLIST", ""), host]))
        env = {**os.environ, "CONDUET_DEVELOPMENT": "true", "CONDUET_OUTBOUND_ALLOWLIST": allowlist}
        # The knowledge base's worker processes uploaded documents beside the server; it stops when its parent —
        # this process, which becomes daphne — ends.
        subprocess.Popen([sys.executable, str(settings.BASE_DIR / "manage.py"), "worker", "--no-reload",
                          "--stop-with-parent"], env=env)
        os.execvpe(sys.executable, [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
                                    "config.asgi:application"], env)
