"""Templates (`Hi {{ customer_name }}`) and expressions (`plan_tier == 'premium'`) in Jinja2's sandbox: no
attribute of Python internals is reachable, and a definition can never run arbitrary code. Both are compiled once,
when the spec is built; rendering never raises (the caller gets a `RenderError` to report)."""
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agents.runtime.types import DocumentError

_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)


class RenderError(Exception):
    pass


class Template:
    """A text template; text without `{` is kept as it is (most messages), so rendering costs nothing."""

    __slots__ = ("source", "_compiled")

    def __init__(self, source: str, where: str):
        if not isinstance(source, str):
            raise DocumentError(f"{where}: expected text", {where: ["Expected a string."]})
        self.source = source
        self._compiled = None
        if "{" in source:
            try:
                self._compiled = _ENV.from_string(source)
            except TemplateError as exc:
                raise DocumentError(f"{where}: bad template", {where: [f"Template error: {exc}"]}) from None

    def render(self, scope: dict[str, Any]) -> str:
        if self._compiled is None:
            return self.source
        try:
            return self._compiled.render(scope)
        except Exception as exc:  # a sandbox violation or a type error in the template: the turn goes on
            raise RenderError(f"template {self.source!r}: {exc}") from None


class Expression:
    """A Jinja2 expression, evaluated to a Python value; undefined names are None."""

    __slots__ = ("source", "_compiled")

    def __init__(self, source: str, where: str):
        if not isinstance(source, str) or not source.strip():
            raise DocumentError(f"{where}: expected an expression", {where: ["Expected a non-empty expression."]})
        self.source = source
        try:
            self._compiled = _ENV.compile_expression(source, undefined_to_none=True)
        except TemplateError as exc:
            raise DocumentError(f"{where}: bad expression", {where: [f"Expression error: {exc}"]}) from None

    def evaluate(self, scope: dict[str, Any]) -> Any:
        try:
            return self._compiled(**scope)
        except Exception as exc:
            raise RenderError(f"expression {self.source!r}: {exc}") from None
