"""Voiceflow `api` nodes → a Conduet HTTP tool and an `api` step. `self` is the diagram's converter
(`vf_steps.DiagramConverter`): these are its methods, kept apart for size."""
import json
import re

from agents.importing import vf_text
from agents.importing.vf_text import REF_RE, items
from agents.runtime.toolspec import check_tools

_ARG_RE = re.compile(r"\{\{ ([A-Za-z_][A-Za-z0-9_]*) \}\}")


def api_step(self, nid: str, data: dict, ports: dict) -> bool:
    """An `api` node → an HTTP tool (its URL, query, headers and JSON body as templates over the variables they
    name, which become its arguments) and an api step (`next`; `fail` → `error`; response mappings → `save`). A
    tool that would not validate (a URL held in a variable, say) is a warning, and the walk takes the fail path."""
    node = self.nodes[nid]
    url = self.text(str(data.get("url") or "").strip())
    query = [f"{self.text(p['key'])}={self.text(str(p.get('val') or ''))}" for p in items(data.get("params"))
             if isinstance(p, dict) and isinstance(p.get("key"), str) and p["key"].strip()]
    if query:
        url += ("&" if "?" in url else "?") + "&".join(query)
    headers = {}
    for header in items(data.get("headers")):
        if not isinstance(header, dict) or not isinstance(header.get("key"), str) or not header["key"].strip():
            continue
        if REF_RE.search(header["key"]) or "{" in header["key"]:
            self.warn(nid, node, f"the header named by a variable ({header['key'][:60]!r}) is left out.")
            continue
        headers[header["key"].strip()] = self.text(str(header.get("val") or ""))
    http = {"method": str(data.get("method") or "GET").upper(), "url": url, "timeoutMs": 10000}
    if headers:
        http["headers"] = headers
    body = api_body(self, nid, data)
    if body is not None:
        http["body"] = body
    texts = [url, *headers.values(), *_strings(body)]
    args = sorted({name for text in texts for name in _ARG_RE.findall(text)})
    tool_id = f"voiceflow_api_{len(self.vf.tools) + 1}"
    tool = {"id": tool_id, "description": str(data.get("name") or f"Voiceflow API call ({url[:80]})"),
            "parameters": {"type": "object", "properties": {name: {} for name in args}}, "http": http}
    problems = check_tools([tool])
    if problems:
        where, messages = next(iter(problems.items()))
        self.warn(nid, node, f"no tool could be made ({where.removeprefix('tools[0].')}: {messages[0]}); "
                             "skipped, the conversation takes its fail path.")
        self.onward[nid] = ports.get("fail") or self.next_of(nid, ports)
        return False
    save = {}
    for mapping in items(data.get("mappings")):
        if not isinstance(mapping, dict) or not isinstance(mapping.get("var"), str):
            continue
        path = re.sub(r"\[(\d+)\]", r".\1", str(mapping.get("path") or "")).strip(".")
        path = re.sub(r"^response\.?", "", path)
        name = self.vf.variable(mapping["var"])
        if not path:
            self.warn(nid, node, f"it saves the whole response into {name!r}; Conduet saves a field of it "
                                 "(name a path such as data.id).")
            continue
        save[name] = path
    self.vf.tools.append(tool)
    self.add(nid, "api", {"tool": tool_id, "args": {name: "{{ " + name + " }}" for name in args}, "save": save})
    self.link(nid, "next", self.next_of(nid, ports))
    self.link(nid, "error", ports.get("fail"))
    return True

def api_body(self, nid: str, data: dict):
    """A raw JSON body as a template, or key/value pairs as an object; None when there is none."""
    if data.get("bodyType") == "rawInput":
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            return None
        marked, names = vf_text._with_refs(content, self.vf.resolve, self.vf.known)
        quoted = re.sub("\x01(\\d+)\x02", lambda m: f"__vf_{m.group(1)}__", marked)
        try:
            parsed = json.loads(re.sub(r'(?<!")(__vf_\d+__)(?!")', r'"\1"', quoted))
        except ValueError:
            self.warn(nid, self.nodes[nid], "its raw body is not JSON and is left out (Conduet tools send JSON).")
            return None
        return _body_templates(parsed, names)
    pairs = [p for p in items(data.get("body")) if isinstance(p, dict) and isinstance(p.get("key"), str)
             and p["key"].strip()]
    if not pairs:
        return None
    self.warn(nid, self.nodes[nid], "its form body is sent as a JSON object.")
    return {p["key"]: self.text(str(p.get("val") or "")) for p in pairs}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _body_templates(value, names: list[str]):
    """A parsed raw body whose strings become templates (`__vf_<n>__` marks the n-th variable)."""
    if isinstance(value, str):
        text = vf_text._JINJA_OPEN.sub("{{ '{' }}", value)
        return re.sub(r"__vf_(\d+)__", lambda m: "{{ " + names[int(m.group(1))] + " }}", text)
    if isinstance(value, dict):
        return {key: _body_templates(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_body_templates(item, names) for item in value]
    return value
