"""The built-in project templates (API.md §3, endpoints 3–4): complete documents a developer starts from. Each one is
valid as it is and runs as it is — the conversation-flow ones need no model; the agentic ones say, without one, what
to configure (their fallback message), and greet with one. Each is a plain dict of the project document's parts plus
`framework`, `description` and `language`; `template_document` hands out a deep copy, so a caller may change it."""
import copy
from dataclasses import dataclass


def _connect(*pairs: tuple[str, str, str]) -> list[dict]:
    return [{"source": source, "port": port, "target": target} for source, port, target in pairs]


NO_MODEL = ("This assistant needs a language model: set CONDUET_LLM_BASE_URL (any OpenAI-compatible endpoint) and "
            "CONDUET_LLM_MODEL, or the project's model.name.")

# --- Customer support (conversation-flow): a menu, an order-status capture, the knowledge base, a person. -----------

SUPPORT_WELCOME = {
    "id": "wf_welcome",
    "name": "Welcome",
    "steps": [
        {"id": "start", "type": "start", "data": {"intents": ["main menu", "start over", "help"]}},
        {"id": "hello", "type": "message", "data": {"text": "Hi {{ customer_name|default('there') }}! "
                                                            "I'm the support assistant."}},
        {"id": "menu", "type": "buttons", "data": {
            "text": "How can I help you today?",
            "buttons": [
                {"label": "Where is my order?", "value": "order", "utterances": ["track my order", "order status"]},
                {"label": "Returns and refunds", "value": "returns", "utterances": ["return an item", "refund"]},
                {"label": "Talk to a person", "value": "human", "utterances": ["human", "agent", "operator"]},
            ]}},
        {"id": "to_order", "type": "jump", "data": {"workflowId": "wf_order"}},
        {"id": "returns", "type": "kb", "data": {"question": "How do returns and refunds work?"}},
        {"id": "returns_policy", "type": "message", "data": {
            "text": "You can return any unused item within 30 days of delivery for a full refund."}},
        {"id": "human", "type": "handoff", "data": {"reason": "The customer asked to talk to a person."}},
        {"id": "answer", "type": "kb", "data": {"question": "{{ last_utterance }}"}},
        {"id": "pick", "type": "message", "data": {"text": "Sorry, I can't answer that yet. Please pick an option."}},
    ],
    "connections": _connect(
        ("start", "next", "hello"), ("hello", "next", "menu"),
        ("menu", "button:0", "to_order"), ("menu", "button:1", "returns"), ("menu", "button:2", "human"),
        ("menu", "noMatch", "answer"), ("returns", "noAnswer", "returns_policy"), ("returns", "next", "menu"),
        ("returns_policy", "next", "menu"), ("answer", "next", "menu"), ("answer", "noAnswer", "pick"),
        ("pick", "next", "menu"),
    ),
}

SUPPORT_ORDER = {
    "id": "wf_order",
    "name": "Order status",
    "steps": [
        {"id": "start", "type": "start", "data": {"intents": ["where is my order", "track my parcel"]}},
        {"id": "order_id", "type": "capture", "data": {
            "prompt": "What's your order number? It looks like A-1234.", "variable": "order_id",
            "validate": "regex", "pattern": r"^[A-Za-z]-?\d{4,}$",
            "retryPrompt": "That doesn't look like an order number (like A-1234). Please try again.",
            "maxAttempts": 3}},
        {"id": "found", "type": "message", "data": {
            "text": "Thanks! Order {{ order_id|upper }} is on its way; you'll get a tracking email shortly."}},
        {"id": "give_up", "type": "handoff", "data": {"reason": "The customer could not give an order number."}},
        {"id": "bye", "type": "end", "data": {}},
    ],
    "connections": _connect(("start", "next", "order_id"), ("order_id", "next", "found"),
                            ("order_id", "fail", "give_up"), ("found", "next", "bye")),
}

CUSTOMER_SUPPORT = {
    "framework": "conversation-flow",
    "description": "A support menu: order status (with a validated order number), returns from the knowledge base, "
                   "and a person on request. Needs no model.",
    "language": "en",
    "instructions": "You are a friendly, concise customer support assistant.",
    "variables": [
        {"name": "customer_name", "type": "string", "default": "there", "description": "how to greet the customer"},
        {"name": "order_id", "type": "string", "description": "the order the customer asks about"},
    ],
    "workflows": [SUPPORT_WELCOME, SUPPORT_ORDER],
    "widget": {"title": "Support", "color": "#4f46e5", "welcomeMessage": "Hi! How can we help?",
               "starters": ["Where is my order?", "Returns and refunds"]},
    "settings": {"startWorkflowId": "wf_welcome", "rateLimit": {"perMinute": 60}, "turnTimeoutSeconds": 120,
                 "fallbackMessage": "Sorry, I didn't understand that. Say 'main menu' to see what I can do."},
}

# --- Agentic support with a knowledge base: the model answers from the documents, hands off when it cannot. ---------

AGENTIC_SUPPORT = {
    "framework": "agentic",
    "description": "An agent that answers from your knowledge base (knowledge_search), records the customer's "
                   "issue and hands off to a person when it cannot help. Needs a model; add documents to the "
                   "knowledge base.",
    "language": "en",
    "instructions": (
        "You are a helpful customer support agent. Answer questions using the knowledge_search tool and only what "
        "it returns; cite the document you used. If the knowledge base has no answer, say so honestly. Record the "
        "customer's issue with set_variable (issue). Hand the conversation to a person with handoff when the "
        "customer asks for one or you cannot help after two attempts. Be brief and friendly."),
    "model": {"temperature": 0.2, "maxTokens": 600},
    "variables": [
        {"name": "customer_name", "type": "string", "default": "there"},
        {"name": "issue", "type": "string", "description": "the customer's problem, in a few words"},
    ],
    "phases": [
        {"id": "answer", "instructions": "Understand the question and answer it from the knowledge base.",
         "allowedToolIds": [], "buttons": [{"label": "Talk to a person", "value": "human"}]},
    ],
    "behaviourConfig": {"agentHarness": {"allowedToolIds": [], "maxHandoffs": 1,
                                         "snapshotKeys": ["customer_name", "issue"]}},
    "workflows": [],
    "widget": {"title": "Help centre", "color": "#0f766e", "welcomeMessage": "Ask me anything about our products.",
               "starters": ["How do I reset my password?", "What is your refund policy?"]},
    "settings": {"fallbackMessage": NO_MODEL, "rateLimit": {"perMinute": 60}, "turnTimeoutSeconds": 120},
}

# --- Lead capture (conversation-flow): name, email, company size, interest; qualified by a condition. ---------------

LEAD_FLOW = {
    "id": "wf_lead",
    "name": "Lead capture",
    "steps": [
        {"id": "start", "type": "start", "data": {"intents": ["book a demo", "talk to sales", "pricing"]}},
        {"id": "hello", "type": "message", "data": {
            "text": "Hi! I'd love to tell you more. It takes four quick questions."}},
        {"id": "name", "type": "capture", "data": {"prompt": "What's your name?", "variable": "name"}},
        {"id": "email", "type": "capture", "data": {
            "prompt": "Thanks {{ name }}! What's your work email?", "variable": "email", "validate": "email",
            "retryPrompt": "That doesn't look like an email address. Please try again."}},
        {"id": "size", "type": "capture", "data": {
            "prompt": "How many people work at your company?", "variable": "company_size", "validate": "number",
            "retryPrompt": "Please answer with a number, like 25."}},
        {"id": "interest", "type": "buttons", "data": {
            "text": "What are you most interested in?",
            "buttons": [{"label": "A demo", "value": "demo"}, {"label": "Pricing", "value": "pricing"},
                        {"label": "Just looking", "value": "browsing"}]}},
        {"id": "demo", "type": "set", "data": {"assign": {"interest": "'demo'"}}},
        {"id": "pricing", "type": "set", "data": {"assign": {"interest": "'pricing'"}}},
        {"id": "browsing", "type": "set", "data": {"assign": {"interest": "'browsing'"}}},
        {"id": "qualify", "type": "condition", "data": {"if": "company_size >= 50 and interest != 'browsing'"}},
        {"id": "hot", "type": "set", "data": {"assign": {"lead_score": "'hot'"}}},
        {"id": "sales_call", "type": "message", "data": {
            "text": "Great, {{ name }}! A member of our sales team will email {{ email }} within one business day "
                    "to set up a call."}},
        {"id": "nurture", "type": "message", "data": {
            "text": "Thanks, {{ name }}! We'll send a short overview to {{ email }}."}},
        {"id": "bye", "type": "end", "data": {}},
    ],
    "connections": _connect(
        ("start", "next", "hello"), ("hello", "next", "name"), ("name", "next", "email"), ("email", "next", "size"),
        ("size", "next", "interest"), ("interest", "button:0", "demo"), ("interest", "button:1", "pricing"),
        ("interest", "button:2", "browsing"), ("interest", "noMatch", "browsing"), ("demo", "next", "qualify"),
        ("pricing", "next", "qualify"), ("browsing", "next", "qualify"), ("qualify", "true", "hot"),
        ("qualify", "false", "nurture"), ("hot", "next", "sales_call"), ("sales_call", "next", "bye"),
        ("nurture", "next", "bye"),
    ),
}

LEAD_CAPTURE = {
    "framework": "conversation-flow",
    "description": "Qualifies a visitor: name, validated email, company size and interest, scored hot or nurture. "
                   "Needs no model.",
    "language": "en",
    "instructions": "You are a friendly sales assistant.",
    "variables": [
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "company_size", "type": "number"},
        {"name": "interest", "type": "string"},
        {"name": "lead_score", "type": "string", "default": "nurture"},
    ],
    "workflows": [LEAD_FLOW],
    "widget": {"title": "Talk to us", "color": "#db2777", "welcomeMessage": "Want a demo? Let's talk.",
               "starters": ["Book a demo", "Pricing"]},
    "settings": {"startWorkflowId": "wf_lead", "rateLimit": {"perMinute": 60}, "turnTimeoutSeconds": 120,
                 "fallbackMessage": "Sorry, I didn't get that. Say 'book a demo' to start again."},
}

# --- Data analyst (agentic): a greeting flow, then the model with query_data; a summary flow with data_query. -------
# `query_data` and `data_query` run only where the conversation has data frames (a data port); without one the
# agent is not offered query_data and the data_query step does nothing, so the template still answers.

ANALYST_WELCOME = {
    "id": "wf_welcome",
    "name": "Welcome",
    "steps": [
        {"id": "start", "type": "start", "data": {}},
        {"id": "hello", "type": "message", "data": {
            "text": "Hi! I'm your data analyst. Upload a CSV or spreadsheet, then ask me a question about it — "
                    "or say 'summarize my data'."}},
    ],
    "connections": _connect(("start", "next", "hello")),
}

ANALYST_SUMMARY = {
    "id": "wf_summary",
    "name": "Summarize the data",
    "steps": [
        {"id": "start", "type": "start", "data": {"intents": ["summarize my data", "give me an overview",
                                                              "describe the dataset"]}},
        {"id": "sample", "type": "data_query", "data": {
            "sql": "SELECT * FROM {{ dataset|default('data') }} LIMIT 50", "name": "sample", "saveTo": "sample"}},
        {"id": "summary", "type": "ai", "data": {
            "prompt": "{% if sample is defined %}Summarize this data for a business reader (columns "
                      "{{ sample.columns|join(', ') }}; {{ sample.numRows }} rows shown of the frame "
                      "{{ dataset|default('data') }}; first rows: {{ sample.sampleRows|tojson }}): what the columns "
                      "mean, the notable values and one suggestion for a next question.{% else %}There is no data "
                      "frame named {{ dataset|default('data') }} yet: ask the user to upload a file (CSV, XLSX, "
                      "Parquet or JSON lines), or to set the variable dataset to the name of one they uploaded."
                      "{% endif %}"}},
    ],
    "connections": _connect(("start", "next", "sample"), ("sample", "next", "summary")),
}

DATA_ANALYST = {
    "framework": "agentic",
    "description": "Answers questions about uploaded data with SQL (query_data, data_query) and explains the "
                   "results. Needs a model; data tools run where the conversation has data frames.",
    "language": "en",
    "instructions": (
        "You are a careful data analyst. When the user asks about their data, use the query_data tool with SQL over "
        "the conversation's data frames, then explain the result in plain words with the key numbers. Never invent "
        "numbers: if no data has been uploaded, ask the user to upload a file. Keep answers short."),
    "model": {"temperature": 0.1, "maxTokens": 800},
    "variables": [{"name": "dataset", "type": "string", "default": "data",
                   "description": "the data frame to query first"}],
    "behaviourConfig": {"agentHarness": {"allowedToolIds": [], "maxHandoffs": 0, "snapshotKeys": ["dataset"]}},
    "workflows": [ANALYST_WELCOME, ANALYST_SUMMARY],
    "widget": {"title": "Data analyst", "color": "#2563eb", "welcomeMessage": "Ask me about your data.",
               "starters": ["Summarize my data", "Which month had the most sales?"]},
    "settings": {"startWorkflowId": "wf_welcome", "fallbackMessage": NO_MODEL, "rateLimit": {"perMinute": 60},
                 "turnTimeoutSeconds": 120},
}


@dataclass(frozen=True)
class ProjectTemplate:
    id: str
    name: str
    document: dict

    @property
    def description(self) -> str:
        return self.document["description"]

    @property
    def framework(self) -> str:
        return self.document["framework"]


TEMPLATES: dict[str, ProjectTemplate] = {template.id: template for template in (
    ProjectTemplate("customer-support", "Customer support flow", CUSTOMER_SUPPORT),
    ProjectTemplate("agentic-support-kb", "Agentic support with knowledge base", AGENTIC_SUPPORT),
    ProjectTemplate("lead-capture", "Lead capture", LEAD_CAPTURE),
    ProjectTemplate("data-analyst", "Data analyst", DATA_ANALYST),
)}


def template_document(template_id: str) -> dict | None:
    """A copy of the template's document, or None when there is no such template."""
    template = TEMPLATES.get(template_id)
    return None if template is None else copy.deepcopy(template.document)
