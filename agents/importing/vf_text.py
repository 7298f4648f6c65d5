"""Voiceflow's texts and expressions in Conduet's terms: slate rich text and `{{[name].id}}` / `{name}` variable
references → Jinja templates (`{{ name }}`), condition trees (if/ifV2) and set expressions (JavaScript) → Jinja
expressions. What cannot be translated raises `Untranslatable` with the reason, which the importer turns into a
warning naming the node; nothing here guesses."""
import json
import re
from collections.abc import Callable

from agents.runtime.templates import Expression
from agents.runtime.types import DocumentError

# `{{[name].id}}`: the name shown on the canvas, then the variable's id (its name, a CMS id or a slot key).
REF_RE = re.compile(r"\{\{\[([^\]\n]{0,200})\]\.([^}\n]{0,200})\}\}")
SINGLE_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,100})\}")
_PLACEHOLDER = "\x01{}\x02"
_PLACEHOLDER_RE = re.compile("\x01(\\d+)\x02")
_JINJA_OPEN = re.compile(r"\{(?=[{%#])")
MAX_DEPTH = 20


def items(value) -> list:
    """A list from an export, or [] when it holds something else."""
    return value if isinstance(value, list) else []


class Untranslatable(ValueError):
    """A Voiceflow expression or text with no Conduet equivalent; its message says why."""


Resolve = Callable[[str, str | None], str]  # (name or id, shown name) → a Conduet variable name


def _with_refs(text: str, resolve: Resolve, known: set[str]) -> tuple[str, list[str]]:
    """`text` with each variable reference replaced by a placeholder, and the variables, in order."""
    names: list[str] = []

    def ref(match: re.Match) -> str:
        names.append(resolve(match.group(2), match.group(1)))
        return _PLACEHOLDER.format(len(names) - 1)

    def single(match: re.Match) -> str:
        if match.group(1) not in known:
            return match.group(0)
        names.append(resolve(match.group(1), None))
        return _PLACEHOLDER.format(len(names) - 1)

    return SINGLE_RE.sub(single, REF_RE.sub(ref, text)), names


def template(text: str, resolve: Resolve, known: set[str]) -> str:
    """A Voiceflow string as a Conduet template: references become `{{ name }}`, and any `{{`, `{%` or `{#` of
    the text itself is escaped so that it stays text."""
    if not isinstance(text, str):
        return ""
    marked, names = _with_refs(text, resolve, known)
    marked = _JINJA_OPEN.sub("{{ '{' }}", marked)
    return _PLACEHOLDER_RE.sub(lambda m: "{{ " + names[int(m.group(1))] + " }}", marked)


def slate(content, resolve: Resolve, known: set[str]) -> str:
    """Slate rich text (a list of paragraphs of children: text leaves, variables, links) as a template; one line
    per paragraph."""
    if isinstance(content, str):
        return template(content, resolve, known)
    if not isinstance(content, list):
        return ""
    return "\n".join(_slate_node(paragraph, resolve, known, 0) for paragraph in content).strip("\n")


def _slate_node(node, resolve: Resolve, known: set[str], depth: int) -> str:
    if depth > MAX_DEPTH or not isinstance(node, dict):
        return ""
    if node.get("type") == "variable":
        name = node.get("id") or node.get("name")
        return "{{ " + resolve(str(name), node.get("name")) + " }}" if name else ""
    if "text" in node and isinstance(node["text"], str):
        return template(node["text"], resolve, known)
    inner = "".join(_slate_node(child, resolve, known, depth + 1) for child in items(node.get("children"))
                    if isinstance(child, dict))
    url = node.get("url")
    if node.get("type") == "link" and isinstance(url, str) and url:
        return f"[{inner}]({template(url, resolve, known)})" if inner else template(url, resolve, known)
    return inner


# --- expressions ---------------------------------------------------------------------------------------------------

_COMPARE = {"equals": "==", "not_equal": "!=", "greater": ">", "greater_or_equal": ">=", "less": "<",
            "less_or_equal": "<="}
_ARITHMETIC = {"plus": "+", "minus": "-", "times": "*", "divide": "/"}
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")


def _literal(value, resolve: Resolve, known: set[str]) -> str:
    """A Voiceflow value operand: a number, or text (with variables spliced in)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "none"
    if not isinstance(value, str):
        raise Untranslatable(f"a value of type {type(value).__name__}")
    if _NUMBER_RE.fullmatch(value.strip()):
        return value.strip()
    marked, names = _with_refs(value, resolve, known)
    parts = [part for part in re.split("(\x01\\d+\x02)", marked) if part]
    if not parts:
        return "''"
    return " ~ ".join(names[int(part[1:-1])] if _PLACEHOLDER_RE.fullmatch(part) else json.dumps(part)
                      for part in parts)


def condition(tree, resolve: Resolve, known: set[str], depth: int = 0) -> str:
    """A Voiceflow condition (ifV2's `{type: and|or|null, value: [...]}` or a legacy `if` tree) as a Jinja
    expression. Comparisons are loose, as in Voiceflow: equality compares text, order compares numbers."""
    if depth > MAX_DEPTH:
        raise Untranslatable("the condition is nested too deeply")
    if not isinstance(tree, dict):
        raise Untranslatable("a condition part that is not an object")
    kind, value = tree.get("type"), tree.get("value")
    if kind == "variable":
        if not isinstance(value, str) or not value:
            raise Untranslatable("a variable operand without a name")
        return resolve(value, None)
    if kind == "value":
        return _literal(value, resolve, known)
    if kind in ("advance", "expression"):
        return javascript(value, resolve, known)
    operands = value if isinstance(value, list) else []
    if kind in (None, "and", "or") or tree.get("logicInterface") == "logic_group":
        joiner = " or " if kind == "or" else " and "
        if not operands:
            raise Untranslatable("an empty condition")
        return "(" + joiner.join(condition(item, resolve, known, depth + 1) for item in operands) + ")"
    sides = [condition(item, resolve, known, depth + 1) for item in operands]
    if kind in ("equals", "not_equal") and len(sides) == 2:
        return f"(({sides[0]})|string {_COMPARE[kind]} ({sides[1]})|string)"
    if kind in _COMPARE and len(sides) == 2:
        return f"(({sides[0]})|float {_COMPARE[kind]} ({sides[1]})|float)"
    if kind in _ARITHMETIC and len(sides) == 2:
        return f"(({sides[0]})|float {_ARITHMETIC[kind]} ({sides[1]})|float)"
    if kind in ("contains", "not_contains") and len(sides) == 2:
        negation = "not " if kind == "not_contains" else ""
        return f"(({sides[1]})|string {negation}in ({sides[0]})|string)"
    if kind in ("starts_with", "ends_with") and len(sides) == 2:
        method = "startswith" if kind == "starts_with" else "endswith"
        return f"(({sides[0]})|string).{method}(({sides[1]})|string)"
    if kind == "has_value" and len(sides) == 1:
        return f"({sides[0]} is defined and {sides[0]} is not none and ({sides[0]})|string != '')"
    if kind == "is_empty" and len(sides) == 1:
        return f"(not {sides[0]})"
    if kind == "not" and len(sides) == 1:
        return f"(not {sides[0]})"
    raise Untranslatable(f"the operator {kind!r}")


# A small JavaScript subset: literals, variables, arithmetic, comparison and logic. Anything else (calls, member
# access, regexes, the ternary) is refused rather than guessed.
_JS_TOKEN = re.compile(r"""\s*(?:(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?P<number>\d+(?:\.\d+)?)"""
                       r"""|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<op>===|!==|==|!=|<=|>=|&&|\|\||[-+*/%<>!()]))""")
_JS_WORDS = {"true": "true", "false": "false", "null": "none", "undefined": "none"}
_JS_OPS = {"===": "==", "!==": "!=", "&&": " and ", "||": " or ", "!": " not "}


def javascript(source, resolve: Resolve, known: set[str]) -> str:
    """A Voiceflow set/condition expression (JavaScript, variables spliced in as `{{[name].id}}` or `{name}`) as
    a Jinja expression. References inside string literals become concatenations, as Voiceflow splices the value
    into the text before it evaluates it."""
    if isinstance(source, int | float) and not isinstance(source, bool):
        return repr(source)
    if not isinstance(source, str) or not source.strip():
        raise Untranslatable("an empty expression")
    marked, names = _with_refs(source, resolve, known)
    out, position, variables = [], 0, set()
    while True:
        start = position + len(marked[position:]) - len(marked[position:].lstrip())
        if start >= len(marked):
            break
        reference = _PLACEHOLDER_RE.match(marked, start)
        if reference:
            out.append(names[int(reference.group(1))])
            variables.add(len(out) - 1)
            position = reference.end()
            continue
        token = _JS_TOKEN.match(marked, position)
        if token is None or token.end() == position:
            raise Untranslatable(f"the expression {source.strip()[:80]!r} uses JavaScript that has no equivalent")
        position = token.end()
        if token.group("string") is not None:
            out.append(_js_string(token.group("string"), names))
        elif token.group("number") is not None:
            out.append(token.group("number"))
        elif token.group("name") is not None:
            word = token.group("name")
            if word in _JS_WORDS:
                out.append(_JS_WORDS[word])
            else:
                out.append(resolve(word, None))
                variables.add(len(out) - 1)
        else:
            out.append(_JS_OPS.get(token.group("op"), token.group("op")))
    if any(part in ("-", "*", "/", "%") for part in out):  # JavaScript arithmetic coerces text to numbers
        out = [f"({part}|float)" if i in variables else part for i, part in enumerate(out)]
    expression = " ".join(part.strip() for part in out if part.strip())
    if not expression:
        raise Untranslatable("an empty expression")
    try:
        Expression(expression, "expression")
    except DocumentError:
        raise Untranslatable(f"the expression {source.strip()[:80]!r} does not translate to a valid one") from None
    return expression


def _js_string(literal: str, names: list[str]) -> str:
    body = literal[1:-1]
    try:
        text = json.loads('"' + body.replace('\\"', '"').replace('"', '\\"') + '"')
    except ValueError:
        text = body
    parts = [part for part in re.split("(\x01\\d+\x02)", text) if part]
    if not parts:
        return "''"
    joined = " ~ ".join(names[int(part[1:-1])] if _PLACEHOLDER_RE.fullmatch(part) else json.dumps(part)
                        for part in parts)
    return f"({joined})" if len(parts) > 1 else joined
