"""The demo agent that `manage.py rundemo` loads: Acme's customer support, a conversation-flow agent that needs no
LLM. It greets by name, offers a menu of buttons, captures and validates an email, branches on `plan_tier`, and
answers an opening-hours question from its intent alone."""


def _connect(*pairs: tuple[str, str, str]) -> list[dict]:
    return [{"source": source, "port": port, "target": target} for source, port, target in pairs]


WELCOME = {
    "id": "wf_welcome",
    "name": "Welcome",
    "steps": [
        {"id": "start", "type": "start", "data": {"intents": ["main menu", "start over", "what can you do"]}},
        {"id": "hello", "type": "message", "data": {"text": "Hi {{ customer_name }}! Welcome to Acme Support."}},
        {"id": "menu", "type": "buttons", "data": {
            "text": "What can I help you with?",
            "buttons": [
                {"label": "Account help", "value": "account", "utterances": ["my account", "login problem"]},
                {"label": "Opening hours", "value": "hours", "utterances": ["when are you open"]},
                {"label": "Talk to a person", "value": "human", "utterances": ["human", "agent", "operator"]},
            ]}},
        {"id": "to_account", "type": "jump", "data": {"workflowId": "wf_account"}},
        {"id": "to_hours", "type": "jump", "data": {"workflowId": "wf_hours"}},
        {"id": "human", "type": "handoff", "data": {"reason": "{{ customer_name }} asked to talk to a person."}},
        {"id": "pick", "type": "message", "data": {"text": "Please pick one of the options."}},
    ],
    "connections": _connect(
        ("start", "next", "hello"), ("hello", "next", "menu"),
        ("menu", "button:0", "to_account"), ("menu", "button:1", "to_hours"), ("menu", "button:2", "human"),
        ("menu", "noMatch", "pick"), ("pick", "next", "menu"),
    ),
}

ACCOUNT = {
    "id": "wf_account",
    "name": "Account help",
    "steps": [
        {"id": "start", "type": "start", "data": {
            "intents": ["help with my account", "I can't log in", "reset my password", "account problem"]}},
        {"id": "email", "type": "capture", "data": {
            "prompt": "What's the email on your account?", "variable": "email", "validate": "email",
            "retryPrompt": "That doesn't look like a valid email address. Please try again."}},
        {"id": "tier", "type": "condition", "data": {"if": "plan_tier == 'premium'"}},
        {"id": "vip", "type": "set", "data": {"assign": {"priority": "'high'"}}},
        {"id": "premium_thanks", "type": "message", "data": {
            "text": "Thanks! As a premium customer, your request about {{ email }} has priority {{ priority }}. "
                    "We'll email you within the hour."}},
        {"id": "thanks", "type": "message", "data": {
            "text": "Thanks! We'll email {{ email }} within 2 business days."}},
        {"id": "bye", "type": "end", "data": {}},
    ],
    "connections": _connect(
        ("start", "next", "email"), ("email", "next", "tier"),
        ("tier", "true", "vip"), ("vip", "next", "premium_thanks"), ("premium_thanks", "next", "bye"),
        ("tier", "false", "thanks"), ("thanks", "next", "bye"),
    ),
}

HOURS = {
    "id": "wf_hours",
    "name": "Opening hours",
    "steps": [
        {"id": "start", "type": "start", "data": {
            "intents": ["what are your opening hours", "when are you open", "opening times"]}},
        {"id": "hours", "type": "message", "data": {"text": "We're open Monday to Friday, 9:00–17:00 CET."}},
        {"id": "bye", "type": "end", "data": {}},
    ],
    "connections": _connect(("start", "next", "hours"), ("hours", "next", "bye")),
}

DEMO_PROJECT = {
    "name": "Acme Support",
    "slug": "acme-support",
    "description": "Customer support for Acme: account help, opening hours, and a person when needed.",
    "framework": "conversation-flow",
    "language": "en",
    "instructions": "You are Acme's friendly support agent.",
    "variables": [
        {"name": "customer_name", "default": "there"},
        {"name": "plan_tier", "default": "free"},
        {"name": "email"},
        {"name": "priority", "default": "normal"},
    ],
    "workflows": [WELCOME, ACCOUNT, HOURS],
    "settings": {
        "startWorkflowId": "wf_welcome",
        "fallbackMessage": "Sorry, I didn't understand that. You can ask about your account or our opening hours.",
        "rateLimit": {"perMinute": 60},
        "turnTimeoutSeconds": 120,
    },
}


# --- Acme Copilot: the agentic demo. It needs a model (CONDUET_LLM_BASE_URL + CONDUET_LLM_MODEL); without one every
# turn says so. Its one HTTP tool calls an endpoint this server itself serves for the demo (`agents/demo_api.py`).

NO_MODEL_MESSAGE = ("Acme Copilot needs a language model. Set CONDUET_LLM_BASE_URL to any OpenAI-compatible "
                    "endpoint (OpenAI, Ollama's http://127.0.0.1:11434/v1, vLLM, LiteLLM, …), CONDUET_LLM_MODEL "
                    "(and CONDUET_LLM_API_KEY if it needs one), then restart rundemo.")


def copilot_project(base_url: str) -> dict:
    """The copilot's document; `base_url` is where this server answers, for its order-lookup tool."""
    return {
        "name": "Acme Copilot",
        "slug": "acme-copilot",
        "description": "An agentic support copilot: finds the order, looks it up, resolves or hands off.",
        "framework": "agentic",
        "language": "en",
        "instructions": (
            "You are Acme's support copilot. Be brief and friendly. Never invent order details: look orders up "
            "with the lookup_order tool. Record what you learn with set_variable (order_id, issue). Hand the "
            "conversation to a person with handoff when the customer asks for one or you cannot help."),
        "model": {"temperature": 0.2, "maxTokens": 400},
        "variables": [
            {"name": "customer_name", "type": "string", "default": "there"},
            {"name": "order_id", "type": "string", "description": "the order the customer asks about"},
            {"name": "issue", "type": "string", "description": "what went wrong, in a few words"},
            {"name": "order_status", "type": "string", "description": "from lookup_order"},
        ],
        "tools": [{
            "id": "lookup_order",
            "description": "Look up an Acme order by its id (like A-1001): status, carrier and delivery estimate.",
            "parameters": {"type": "object", "required": ["order_id"], "additionalProperties": False,
                           "properties": {"order_id": {"type": "string", "pattern": "^[A-Z]-[0-9]{4}$",
                                                       "description": "the order id, like A-1001"}}},
            "http": {"method": "GET", "url": f"{base_url}/demo/orders/{{{{ order_id }}}}", "timeoutMs": 5000},
            "save": {"order_status": "status"},
        }],
        "phases": [
            {"id": "triage",
             "instructions": "Find out which order the customer means and what the problem is; look the order up.",
             "allowedToolIds": ["lookup_order"],
             "buttons": [{"label": "Where is my order?", "value": "where"},
                         {"label": "Talk to a person", "value": "human"}],
             "exitCondition": "order_id and issue"},
            {"id": "resolution",
             "instructions": "Explain what you found and what happens next. Offer a person if the customer is "
                             "not satisfied.",
             "allowedToolIds": ["lookup_order"]},
        ],
        "behaviourConfig": {"agentHarness": {"allowedToolIds": ["lookup_order"], "maxHandoffs": 1,
                                             "snapshotKeys": ["customer_name", "order_id", "issue", "order_status"]}},
        "workflows": [],
        "settings": {"fallbackMessage": NO_MODEL_MESSAGE, "rateLimit": {"perMinute": 60}, "turnTimeoutSeconds": 120},
    }
