"""The demo agent that `manage.py rundemo` loads: Acme's customer support, a conversation-flow agent that needs no
LLM. It greets by name, offers a menu of buttons, captures and validates an email, branches on `plan_tier`, and
answers from Acme's help centre — a few documents in its knowledge base (`HELP_CENTRE`, loaded by
`demo_documents_load`): typed questions the menu does not match, and the opening hours, are answered with the best
passage and its source (and, with a model, a grounded answer that cites it). Without the documents it answers as
before: the opening hours from its own message, anything else with the fallback message."""
import hashlib


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
        {"id": "answer", "type": "kb", "data": {"question": "{{ last_utterance }}"}},
        {"id": "pick", "type": "message", "data": {"text": "Please pick one of the options."}},
    ],
    "connections": _connect(
        ("start", "next", "hello"), ("hello", "next", "menu"),
        ("menu", "button:0", "to_account"), ("menu", "button:1", "to_hours"), ("menu", "button:2", "human"),
        ("menu", "noMatch", "answer"), ("answer", "next", "menu"), ("answer", "noAnswer", "pick"),
        ("pick", "next", "menu"),
    ),
}

ACCOUNT = {
    "id": "wf_account",
    "name": "Account help",
    "steps": [
        {"id": "start", "type": "start", "data": {
            "intents": ["help with my account", "I can't log in", "account problem"]}},
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
        # The help centre's page when the knowledge base has it (the topic first, so that "opening times" or "are you
        # open on Saturday?" both find that page); else the flow's own answer.
        {"id": "lookup", "type": "kb", "data": {"question": "Opening hours: {{ last_utterance }}"}},
        {"id": "hours", "type": "message", "data": {"text": "We're open Monday to Friday, 9:00–17:00 CET."}},
        {"id": "bye", "type": "end", "data": {}},
    ],
    "connections": _connect(("start", "next", "lookup"), ("lookup", "next", "bye"), ("lookup", "noAnswer", "hours"),
                            ("hours", "next", "bye")),
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


# --- Acme's help centre: the knowledge base of Acme Support. Text documents (markdown: each heading starts a section,
# which becomes a passage's source).

HELP_COLLECTION = "help-centre"  # the documents' `collection` metadata: what demo_documents_load owns

HELP_CENTRE = {
    "Opening hours": """# Opening hours

## Support hours
Our opening hours are Monday to Friday, 9:00–17:00 CET. The support team is open for chat, email
(support@acme.example) and phone (+49 30 1234 5678) during those hours.

Messages sent when we are closed are answered on the next working day, in the order they arrived.

## Weekends and public holidays
We are closed on Saturdays, Sundays and German public holidays. Between Christmas Eve and New Year's Day the
support team works reduced hours, 10:00–14:00 CET, and the help centre shows the exact dates in December.

## If your account is at risk
If your account has been compromised, use "Lock my account" under Settings › Security at any time, day or night:
it signs out every device at once. We follow up on locked accounts first thing on the next working day.
""",
    "Password reset": """# Password reset

## Reset your password yourself
To reset your password, open the sign-in page and choose "Forgot password?". Enter the email address of your
Acme account and we send you a reset link. The link works once and expires after 60 minutes. Choose a new
password of at least 12 characters; you are signed in once it is saved.

## The reset email did not arrive
Reset emails usually arrive within two minutes. Check your spam or junk folder, and make sure you typed the email
address your account uses. If nothing arrives after 15 minutes, ask for a new link: each new link cancels the
ones before it.

## Locked out after too many attempts
After five wrong passwords in a row your account is locked for 30 minutes, to protect it. Wait for the lock to
end, then reset your password as described above. Support cannot see or set your password for you.
""",
    "Refund policy": """# Refund policy

## Who can get a refund
You can return any product within 30 days of delivery for a full refund, as long as it is unused and in its
original packaging. Subscriptions can be refunded within 14 days of a payment if you have not used the service
in that period.

## How to ask for a refund
Open Orders in your account, choose the order and select "Return or refund". Print the prepaid return label and
drop the parcel at any post office. For a subscription, choose "Cancel and refund" under Billing.

## How long a refund takes
Once the returned parcel reaches our warehouse we check it within 3 business days. The refund is then paid to
your original payment method, which usually takes 5 to 10 business days depending on your bank. We email you
when the refund has been sent.
""",
    "Shipping and delivery": """# Shipping and delivery

## Delivery times
Orders placed before 14:00 CET on a working day leave our warehouse the same day. Standard delivery takes 2 to 4
business days within Germany and 3 to 7 business days to the rest of the European Union. Express delivery
arrives the next business day within Germany.

## Shipping costs
Standard shipping is free for orders over 50 euros; below that it costs 4.90 euros. Express delivery costs 9.90
euros. International shipping outside the EU is calculated at checkout.

## Where is my parcel?
As soon as your parcel leaves the warehouse we email you a tracking link, so you can see where it is. You can also
track it under Orders in your account. Tracking can take up to 24 hours to show the first scan.
""",
}


def demo_documents_load(*, project) -> list:
    """Acme's help centre in `project`'s knowledge base, idempotently: each document is kept when it is ready with
    the same text, else (new, changed, failed, or never finished) created again and processed here, synchronously —
    the demo answers from them with no worker running. Help-centre documents no longer in `HELP_CENTRE` go. Returns
    the documents, in `HELP_CENTRE`'s order."""
    from agents.knowledge.models import KnowledgeDocument
    from agents.knowledge.services import document_create_text, document_delete, document_process

    existing = {document.name: document for document in
                KnowledgeDocument.objects.filter(project=project, metadata__collection=HELP_COLLECTION)}
    documents = []
    for name, content in HELP_CENTRE.items():
        document = existing.pop(name, None)
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        if document is not None and (document.sha256 != digest or document.status != KnowledgeDocument.Status.READY):
            document_delete(document=document)
            document = None
        if document is None:
            document = document_create_text(project=project, name=name, content=content,
                                            metadata={"collection": HELP_COLLECTION})
            document_process(document_id=document.id)
            document.refresh_from_db()
        documents.append(document)
    for stale in existing.values():
        document_delete(document=stale)
    return documents


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
