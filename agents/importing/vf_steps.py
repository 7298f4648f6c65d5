"""One Voiceflow diagram → one Conduet workflow (see `voiceflow.py` for what maps to what). Two passes:
`collect_entries` maps every node to steps (and notes which intent enters where, which another diagram's goTo may
need), then `workflow` resolves the ports — through blocks to their first step and through skipped nodes to their
`next`."""
import re

from agents.importing import vf_api, vf_text
from agents.importing.vf_text import REF_RE, Untranslatable, items

CONTAINERS = ("block", "actions")
IGNORED = ("markup_text", "markup_video", "markup_image", "markup_shape", "comment", "note")
WRITES_BUILT_IN = ("user_id", "platform", "timestamp", "turn", "last_media")
_TAG_RE = re.compile(r"<[^>]{0,500}>")

__all__ = ["REF_RE", "DiagramConverter", "flatten_text"]


def flatten_text(value, depth: int = 0) -> str:
    """The plain text of a string or of nested `{text: [...]}` / `children` lists (utterances, slate)."""
    if depth > 20:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(flatten_text(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return flatten_text(value.get("text", value.get("children", "")), depth + 1)
    return ""


def _target(port) -> str | None:
    target = port.get("target") if isinstance(port, dict) else None
    return target if isinstance(target, str) and target else None


def node_ports(node: dict) -> dict[str, str | None]:
    """A node's ports by name: `next`, `else`, `fail`, … (builtIn or typed), `dynamic:<i>`, `key:<button id>`."""
    data = node.get("data") if isinstance(node.get("data"), dict) else {}
    ports: dict[str, str | None] = {}
    v2 = data.get("portsV2")
    if isinstance(v2, dict):
        built_in = v2.get("builtIn") if isinstance(v2.get("builtIn"), dict) else {}
        for name, port in built_in.items():
            ports[str(name)] = _target(port)
        for i, port in enumerate(v2.get("dynamic") if isinstance(v2.get("dynamic"), list) else []):
            ports[f"dynamic:{i}"] = _target(port)
        for key, port in (v2.get("byKey") if isinstance(v2.get("byKey"), dict) else {}).items():
            ports[f"key:{key}"] = _target(port)
    legacy = data.get("ports")
    if not ports and isinstance(legacy, list):
        paths = node.get("type") in ("interaction", "choice", "if")  # [0] is the else path, then one per path
        for i, port in enumerate(legacy):
            kind = port.get("type") if isinstance(port, dict) else None
            if paths:
                ports["else" if i == 0 else f"dynamic:{i - 1}"] = _target(port)
            elif isinstance(kind, str) and kind and kind not in ports:
                ports[kind] = _target(port)
            else:
                ports["next" if "next" not in ports else f"dynamic:{i}"] = _target(port)
    return ports


class DiagramConverter:
    def __init__(self, importer, diagram_id: str, diagram: dict):
        self.vf = importer
        self.diagram_id = diagram_id
        self.name = str(diagram.get("name") or diagram_id)
        self.workflow_id = importer.workflow_ids[diagram_id]
        self.nodes = {str(nid): node for nid, node in diagram["nodes"].items() if isinstance(node, dict)}
        self.following: dict[str, str] = {}  # step node → the next step of its container
        self.first: dict[str, str | None] = {}  # container → its first step
        for nid, node in self.nodes.items():
            if node.get("type") in CONTAINERS:
                data = node["data"] if isinstance(node.get("data"), dict) else {}
                steps = [s for s in items(data.get("steps")) if isinstance(s, str)]
                self.first[nid] = steps[0] if steps else None
                self.following.update(zip(steps, steps[1:], strict=False))
        self.steps: list[dict] = []
        self.pending: list[tuple[str, str, str | None, bool]] = []  # (step, port, target, target is a step id)
        self.entry: dict[str, str] = {}  # mapped node → its first step id
        self.onward: dict[str, str | None] = {}  # walked-through node → its next target
        self.terminal: set[str] = set()  # nodes where the path ends (prompt)
        self.gotos: list[tuple[str, dict]] = []
        self.intent_nodes: list[tuple[str, dict]] = []
        self.start_node: str | None = None

    def warn(self, nid: str, node: dict, message: str) -> None:
        label = (node.get("data") or {}).get("name") if isinstance(node.get("data"), dict) else None
        named = f" {label!r}" if isinstance(label, str) and label.strip() else ""
        self.vf.warn(f"Node {nid} ({node.get('type')}{named}) in diagram {self.name!r}: {message}")

    def text(self, value) -> str:
        return vf_text.template(value, self.vf.resolve, self.vf.known)

    def rich(self, value) -> str:
        return vf_text.slate(value, self.vf.resolve, self.vf.known)

    def add(self, step_id: str, kind: str, data: dict) -> str:
        self.steps.append({"id": step_id, "type": kind, "data": data})
        return step_id

    def link(self, step_id: str, port: str, target: str | None, *, internal: bool = False) -> None:
        if target is not None:
            self.pending.append((step_id, port, target, internal))

    def next_of(self, nid: str, ports: dict, name: str = "next") -> str | None:
        return ports.get(name) or (self.following.get(nid) if name == "next" else None)

    # --- pass 1 ----------------------------------------------------------------------------------------------------

    def collect_entries(self) -> None:
        for nid, node in self.nodes.items():
            kind = node.get("type")
            if kind in CONTAINERS or kind in IGNORED:
                continue
            data = node.get("data") if isinstance(node.get("data"), dict) else {}
            ports = node_ports(node)
            if kind == "start":
                self.start_node = self.start_node or nid
                self.onward[nid] = self.next_of(nid, ports)
            elif kind == "intent":
                self.intent_nodes.append((nid, data))
                self.onward[nid] = self.next_of(nid, ports)
            elif kind == "prompt":
                self.terminal.add(nid)
                reprompts = (data.get("noMatches") or {}).get("reprompts") if isinstance(data.get("noMatches"),
                                                                                          dict) else None
                texts = [self.text(_TAG_RE.sub("", r.get("content") or "")) for r in items(reprompts)
                         if isinstance(r, dict) and isinstance(r.get("content"), str)]
                if any(texts) and self.vf.fallback is None:
                    self.vf.fallback = next(t for t in texts if t)
            elif kind == "goTo":
                self.gotos.append((nid, data))
                self.entry[nid] = nid
            else:
                try:
                    mapped = self.map_step(nid, kind, data, ports)
                except Untranslatable as exc:
                    self.warn(nid, node, f"{exc}; skipped, the conversation goes on by its next path.")
                    mapped = False
                if mapped:
                    self.entry[nid] = nid
                elif nid not in self.onward:
                    self.onward[nid] = self.next_of(nid, ports)
        for nid, data in self.intent_nodes:
            key = data.get("intent")
            intent = self.vf.intents.get(key) if isinstance(key, str) else None
            if intent is None:
                self.warn(nid, self.nodes[nid], f"its intent {key!r} is not in the export; it is not an entry.")
                continue
            if intent.get("slots"):
                self.vf.warn(f"Intent {intent['name']!r} fills slots in Voiceflow; Conduet intents fill none "
                             "(ask for them with capture steps).")
            if self.start_node is None:
                self.start_node = nid
                self.vf.entries.setdefault(key, (self.workflow_id, None))
            else:
                self.vf.entries.setdefault(key, (self.intent_workflow_id(intent["name"]), None))

    def map_step(self, nid: str, kind: str, data: dict, ports: dict) -> bool:
        """Adds the node's steps and their pending connections; False when it is walked through."""
        node = self.nodes[nid]
        if kind in ("text", "speak"):
            if kind == "text":
                variants = [self.rich(t.get("content")) for t in items(data.get("texts")) if isinstance(t, dict)]
            else:
                variants = [self.text(_TAG_RE.sub("", d.get("content") or "")) for d in items(data.get("dialogs"))
                            if isinstance(d, dict) and isinstance(d.get("content"), str)]
            variants = [v for v in variants if v.strip()]
            if not variants:
                return False
            self.add(nid, "message", {"text": variants[0]} if len(variants) == 1 else {"texts": variants})
            self.link(nid, "next", self.next_of(nid, ports))
        elif kind == "buttons":
            buttons = [b for b in items(data.get("buttons")) if isinstance(b, dict)]
            if not buttons:
                return False
            if any(b.get("actions") for b in buttons):
                self.warn(nid, node, "its buttons' own actions (URLs, go-tos) are not imported; their paths are.")
            self.add(nid, "buttons", {"buttons": [
                {"label": self.text(str(b.get("name") or f"Option {i + 1}")), "value": str(b.get("id") or i)}
                for i, b in enumerate(buttons)]})
            for i in range(len(buttons)):
                self.link(nid, f"button:{i}", ports.get(f"dynamic:{i}"))
            self.link(nid, "noMatch", ports.get("else"))
        elif kind in ("interaction", "choice"):
            return self.choice(nid, data, ports)
        elif kind in ("capture", "captureV2"):
            capture = data.get("capture") if isinstance(data.get("capture"), dict) else data
            variable = capture.get("variable") or data.get("variable") or data.get("slot")
            if not isinstance(variable, str) or not variable:
                raise Untranslatable("it captures into no variable (entity captures are not imported)")
            name = self.vf.variable(variable)
            if name in WRITES_BUILT_IN:
                self.warn(nid, node, f"it captures into {name!r}, which Conduet fills itself: the answer is not "
                                     "seen under that name.")
            self.add(nid, "capture", {"variable": name})
            self.link(nid, "next", self.next_of(nid, ports))
            self.link(nid, "fail", ports.get("else"))
        elif kind in ("if", "ifV2"):
            return self.conditions(nid, data, ports)
        elif kind in ("set", "setV2"):
            return self.assignments(nid, data, ports)
        elif kind == "api":
            return vf_api.api_step(self, nid, data, ports)
        elif kind in ("exit", "end"):
            self.add(nid, "end", {})
        elif kind in ("component", "flow"):
            workflow_id = self.vf.workflow_ids.get(data.get("diagramID"))
            if workflow_id is None:
                raise Untranslatable(f"its diagram {data.get('diagramID')!r} is not in the export")
            self.add(nid, "jump", {"workflowId": workflow_id})
            self.link(nid, "next", self.next_of(nid, ports))
        elif kind == "visual" and isinstance(data.get("image"), str) and data["image"].strip():
            self.add(nid, "media", {"url": self.text(data["image"].strip())})
            self.link(nid, "next", self.next_of(nid, ports))
        elif kind == "generative" and isinstance(data.get("prompt"), str) and data["prompt"].strip():
            self.warn(nid, node, "mapped to an ai step; its own model, temperature, token limit and system prompt "
                                 "are not carried over (the project's model answers).")
            self.add(nid, "ai", {"prompt": self.text(data["prompt"])})
            self.link(nid, "next", self.next_of(nid, ports))
        elif kind == "ai_set":
            return self.ai_sets(nid, data, ports)
        else:
            self.warn(nid, node, "this node type is not supported; skipped, the conversation goes on by its "
                                 "next path." if self.next_of(nid, ports) else
                                 "this node type is not supported; skipped (it has no next path).")
            return False
        return True

    def choice(self, nid: str, data: dict, ports: dict) -> bool:
        choices = [c for c in items(data.get("choices")) if isinstance(c, dict)]
        shown = [b for b in items(data.get("buttons")) if isinstance(b, dict)]
        buttons = []
        for i, choice in enumerate(choices):
            intent = self.vf.intents.get(choice.get("intent")) if isinstance(choice.get("intent"), str) else None
            if intent is None:
                self.warn(nid, self.nodes[nid], f"choice {i + 1} names the unknown intent {choice.get('intent')!r}.")
                intent = {"name": str(choice.get("intent") or f"Option {i + 1}"), "utterances": []}
            label = shown[i].get("name") if i < len(shown) and isinstance(shown[i].get("name"), str) else None
            buttons.append({"label": self.text(label) if label else intent["name"], "value": intent["name"],
                            "utterances": [u for u in intent["utterances"] if u != intent["name"]][:50]})
        if not buttons:
            return False
        self.add(nid, "buttons", {"buttons": buttons})
        for i in range(len(buttons)):
            self.link(nid, f"button:{i}", ports.get(f"dynamic:{i}"))
        self.link(nid, "noMatch", ports.get("else"))
        return True

    def conditions(self, nid: str, data: dict, ports: dict) -> bool:
        paths = []
        for i, expression in enumerate(items(data.get("expressions"))):
            try:
                paths.append((i, vf_text.condition(expression, self.vf.resolve, self.vf.known)))
            except Untranslatable as exc:
                self.warn(nid, self.nodes[nid], f"path {i + 1} is left out: {exc} cannot be translated.")
        if not paths:
            self.onward[nid] = ports.get("else")
            return False
        ids = [nid] + [f"{nid}_{n}" for n in range(2, len(paths) + 1)]
        for step_id, (i, expression) in zip(ids, paths, strict=True):
            self.add(step_id, "condition", {"if": expression})
            self.link(step_id, "true", ports.get(f"dynamic:{i}"))
        for step_id, after in zip(ids, ids[1:], strict=False):
            self.link(step_id, "false", after, internal=True)
        self.link(ids[-1], "false", ports.get("else") or self.following.get(nid))
        return True

    def assignments(self, nid: str, data: dict, ports: dict) -> bool:
        assign = {}
        for item in items(data.get("sets")):
            if not isinstance(item, dict) or not isinstance(item.get("variable"), str):
                continue
            name = self.vf.variable(item["variable"])
            try:
                if item.get("type") == "value":
                    source = vf_text._literal(item.get("value", item.get("expression")), self.vf.resolve,
                                              self.vf.known)
                elif isinstance(item.get("expression"), dict):
                    source = vf_text.condition(item["expression"], self.vf.resolve, self.vf.known)
                else:
                    source = vf_text.javascript(item.get("expression"), self.vf.resolve, self.vf.known)
            except Untranslatable as exc:
                self.warn(nid, self.nodes[nid], f"setting {name!r} is left out: {exc} cannot be translated.")
                continue
            if name in WRITES_BUILT_IN:
                self.warn(nid, self.nodes[nid], f"it sets {name!r}, which Conduet fills itself.")
            assign[name] = source
        if not assign:
            return False
        self.add(nid, "set", {"assign": assign})
        self.link(nid, "next", self.next_of(nid, ports))
        return True

    def ai_sets(self, nid: str, data: dict, ports: dict) -> bool:
        sets = [s for s in items(data.get("sets")) if isinstance(s, dict) and isinstance(s.get("variable"), str)
                and isinstance(s.get("prompt"), str) and s["prompt"].strip()]
        if not sets:
            return False
        self.warn(nid, self.nodes[nid], "mapped to ai steps that extract each value; their own model settings "
                                        "are not carried over.")
        ids = [nid] + [f"{nid}_{n}" for n in range(2, len(sets) + 1)]
        for step_id, item in zip(ids, sets, strict=True):
            self.add(step_id, "ai", {"prompt": self.text(item["prompt"]), "saveTo": self.vf.variable(item["variable"])})
        for step_id, after in zip(ids, ids[1:], strict=False):
            self.link(step_id, "next", after, internal=True)
            self.link(step_id, "error", after, internal=True)
        onward = self.next_of(nid, ports)
        self.link(ids[-1], "next", onward)
        self.link(ids[-1], "error", onward)
        return True

    # --- pass 2 ----------------------------------------------------------------------------------------------------

    def resolve(self, target: str | None, seen: frozenset = frozenset()) -> str | None:
        """The Conduet step a Voiceflow port target leads to (None: the path ends)."""
        if target is None or target in seen or target in self.terminal:
            return None
        seen = seen | {target}
        if target in self.entry:
            return self.entry[target]
        if target in self.first:
            return self.resolve(self.first[target], seen)
        if target in self.onward:
            return self.resolve(self.onward[target], seen)
        if target not in self.nodes:
            self.vf.warn(f"A port in diagram {self.name!r} targets {target!r}, which is not in it: left unconnected.")
        return None

    def intent_workflow_id(self, name: str) -> str:
        key = (self.diagram_id, name)
        if key not in self.vf.intent_workflows:
            base = "wf_intent_" + (re.sub(r"\W+", "_", name.lower()).strip("_") or "entry")[:40]
            workflow_id, n = base, 2
            while workflow_id in self.vf.workflow_ids.values() or workflow_id in self.vf.intent_workflows.values():
                workflow_id, n = f"{base}_{n}", n + 1
            self.vf.intent_workflows[key] = workflow_id
        return self.vf.intent_workflows[key]

    def workflow(self) -> dict:
        for nid, data in self.gotos:
            entry = self.vf.entries.get(data.get("intent"))
            if entry is None and self.vf.workflow_ids.get(data.get("diagramID")):
                entry = (self.vf.workflow_ids[data["diagramID"]], None)
            if entry is None:
                self.warn(nid, self.nodes[nid], "its intent has no entry in the export; the path ends here.")
                self.entry.pop(nid, None)
                self.terminal.add(nid)
                continue
            self.add(nid, "jump", {"workflowId": entry[0], **({"stepId": entry[1]} if entry[1] else {})})
        start = self.start_node or "start"
        start_data = {}
        if self.start_node and self.nodes[self.start_node].get("type") == "intent":
            intent = self.vf.intents.get(self.nodes[self.start_node].get("data", {}).get("intent")) or {}
            start_data = {"intents": list(items(intent.get("utterances")))[:200]}
        self.steps.insert(0, {"id": start, "type": "start", "data": start_data})
        if self.start_node:
            self.link(start, "next", self.onward.get(self.start_node))
        connections, used = [], set()
        for step_id, port, target, internal in self.pending:
            resolved = target if internal else self.resolve(target)
            if resolved is not None and (step_id, port) not in used:
                used.add((step_id, port))
                connections.append({"source": step_id, "port": port, "target": resolved})
        return {"id": self.workflow_id, "name": self.name[:200], "steps": self.steps, "connections": connections}

    def intent_workflows(self) -> list[dict]:
        workflows = []
        for nid, data in self.intent_nodes:
            if nid == self.start_node:
                continue
            intent = self.vf.intents.get(data.get("intent"))
            target = self.resolve(self.onward.get(nid))
            if intent is None or target is None:
                if intent is not None:
                    self.warn(nid, self.nodes[nid], "it leads nowhere; no entry is made for it.")
                continue
            workflows.append({"id": self.intent_workflow_id(intent["name"]), "name": f"Intent: {intent['name']}",
                              "steps": [{"id": "start", "type": "start",
                                         "data": {"intents": list(intent["utterances"])[:200]}},
                                        {"id": "go", "type": "jump",
                                         "data": {"workflowId": self.workflow_id, "stepId": target}}],
                              "connections": [{"source": "start", "port": "next", "target": "go"}]})
        return workflows
