"""Templates in HTTP configs and child data, rendered by Jinja2's immutable sandbox.

The sandbox stops attribute escapes (``__class__``, ``__globals__``) and
``str.format`` tricks; on top of it this module bounds the work one render may
do, because templates see user-controlled state: no loader (``include``,
``import`` and ``extends`` fail), strict undefined (a missing name is an error,
never a blank), a per-render deadline and ``range`` budget checked at every
attribute access, call, operator and output chunk, size checks before the
operations that multiply text (``*``, ``**``, ``~``, width-taking filters and
``str`` methods), and an output cap enforced while streaming. Every failure is
a one-line ``TemplateError``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from ruvon_edge.errors import TemplateError
from ruvon_edge.expressions import MAX_SIZE, LimitExceeded, bounded, checked_binop
from ruvon_edge.providers.template_engine import TemplateEngine

MAX_RANGE_ITEMS = 100_000  # range() items per render, across all loops
_BIG_NUMBER = re.compile(r"\d{5,}")
_PERCENT_SPEC = re.compile(r"%[-#0 +]*(\*|\d{5,})|%[-#0 +]*\d*\.(\*|\d{5,})")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{[^{}]*\}[^{}]*\}")
_LOADER_TAGS = (
    (jinja2.nodes.Include, "include"),
    (jinja2.nodes.Import, "import"),
    (jinja2.nodes.FromImport, "from ... import"),
    (jinja2.nodes.Extends, "extends"),
)
_TICKING = "ruvon_deadline_checked"  # the filter every {% for %} iterates through
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


@dataclass
class _Budget:
    deadline: float
    range_left: int


_budget: ContextVar[_Budget | None] = ContextVar("ruvon_template_budget", default=None)


def _tick() -> _Budget | None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise LimitExceeded("render took too long")
    return budget


def _printable_size(value: Any, limit: int = MAX_SIZE) -> int:
    """Estimate ``len(str(value))`` without building it; LimitExceeded past ``limit``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 * len(item) + 2
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 * len(item) + 2
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            raise LimitExceeded(f"value is larger than {limit} characters")
    return total


def _ticking(items: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, checking the render deadline before each one (an empty body still ticks)."""
    for item in items:
        _tick()
        yield item


def _bounded_range(*args: int) -> range:
    budget = _tick()
    rng = range(*args)
    if budget is not None:
        budget.range_left -= len(rng)
        if budget.range_left < 0:
            raise LimitExceeded(f"range() produced more than {MAX_RANGE_ITEMS} items in one render")
    return rng


def _check_str_method(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse str methods whose arguments would blow the text up."""
    name = getattr(method, "__name__", "")
    text = getattr(method, "__self__", None)
    if not isinstance(text, str):
        return
    if name in _WIDTH_METHODS and any(isinstance(a, int) and a > MAX_SIZE for a in args):
        raise LimitExceeded(f"str.{name}() width larger than {MAX_SIZE}")
    if name in ("format", "format_map") and (
        _BIG_NUMBER.search(text) or _NESTED_FIELD.search(text)
    ):
        raise LimitExceeded("str.format() with a huge or computed width")
    if name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1])
    if name == "join" and args:
        _check_join(args[0], text)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if old == "" else text.count(old)
        if len(text) + hits * len(new) > MAX_SIZE:
            raise LimitExceeded(f"replace() result longer than {MAX_SIZE}")


def _check_join(items: Any, sep: Any) -> None:
    if isinstance(items, list | tuple):
        _printable_size(items, MAX_SIZE - len(str(sep)) * len(items))


class _BoundedCodeGenerator(CodeGenerator):
    """Routes ``~`` concatenation and list, tuple and dict literals through the environment,
    so the size of what they build is checked (``{% set x = [x, x] %}`` doubles it)."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Any) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _bounded(self, visit: Callable[..., None], node: Any, frame: Any) -> None:
        self.write("environment.bounded_literal(")
        visit(self, node, frame)
        self.write(")")

    def visit_List(self, node: jinja2.nodes.List, frame: Any) -> None:
        self._bounded(CodeGenerator.visit_List, node, frame)

    def visit_Dict(self, node: jinja2.nodes.Dict, frame: Any) -> None:
        self._bounded(CodeGenerator.visit_Dict, node, frame)

    def visit_Tuple(self, node: jinja2.nodes.Tuple, frame: Any) -> None:
        if node.ctx != "load":  # an assignment target (``{% for a, b in ... %}``)
            CodeGenerator.visit_Tuple(self, node, frame)
        else:
            self._bounded(CodeGenerator.visit_Tuple, node, frame)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus time and size bounds on every operation."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            loader=None,
            cache_size=0,
            finalize=self._finalize,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        for name in list(self.filters):
            self.filters[name] = _guard_filter(name, self.filters[name])
        self.filters[_TICKING] = _ticking

    def compile_checked(self, source: str) -> jinja2.Template:
        """Compile ``source``, refusing tags that need a loader (there is none, on purpose)."""
        tree = self.parse(source)
        for node_type, tag in _LOADER_TAGS:
            if tree.find(node_type) is not None:
                raise TemplateError(f"{{% {tag} %}} is not available in templates (no loader)")
        for loop in tree.find_all(jinja2.nodes.For):  # every iteration checks the deadline
            loop.iter = jinja2.nodes.Filter(
                loop.iter, _TICKING, [], [], None, None, lineno=loop.lineno
            )
        return self.from_string(tree)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Allow only fields on pydantic models (never their methods), as in conditions."""
        if isinstance(obj, BaseModel):
            return attr in type(obj).model_fields or attr in (obj.__pydantic_extra__ or {})
        return super().is_safe_attribute(obj, attr, value)

    @staticmethod
    def _finalize(value: Any) -> Any:
        _printable_size(value)
        return value

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        _tick()
        parts = tuple(parts)
        _printable_size(parts)
        return "".join(str(p) for p in parts)

    def bounded_literal(self, value: Any) -> Any:
        _tick()
        return bounded(value, "a literal")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        return checked_binop(operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_str_method(getattr(__obj, "__wrapped__", __obj), args)
        return super().call(__context, __obj, *args, **kwargs)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a built-in filter with the deadline and, where it multiplies text, a size check."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_filter_args(name, args[skip:], kwargs)
        return func(*args, **kwargs)

    return guarded


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_filter_args(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value = args[0] if args else None
    numbers = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, int)]
    if name in ("center", "indent", "wordwrap", "batch", "slice") and any(
        abs(n) > MAX_SIZE for n in numbers
    ):
        raise LimitExceeded(f"{name} filter argument larger than {MAX_SIZE}")
    text = value if isinstance(value, str) else ""
    lines = text.count("\n") + 1
    if name == "indent":
        width = _arg(args, kwargs, 1, "width", 4)
        pad = len(width) if isinstance(width, str) else int(width)
        _check_length(name, len(text) + lines * pad)
    elif name == "wordwrap":
        width = max(int(_arg(args, kwargs, 1, "width", 79)), 1)
        wrap = _arg(args, kwargs, 3, "wrapstring", None) or "\n"
        _check_length(name, len(text) + (len(text) // width + lines) * len(wrap))
    elif name == "round" and any(abs(n) > 100 for n in numbers):
        raise LimitExceeded("round filter precision out of range")
    elif name == "format" and _PERCENT_SPEC.search(text):
        raise LimitExceeded("format filter with a huge or computed width")
    elif name == "replace" and len(args) >= 3:
        _check_replace(value, args[1], args[2])
    elif name == "join" and isinstance(value, list | tuple):
        _check_join(value, _arg(args, kwargs, 1, "d", ""))
    elif name in ("string", "tojson", "pprint", "list", "join", "urlencode", "xmlattr"):
        _printable_size(value)


def _check_length(name: str, length: int) -> None:
    if length > MAX_SIZE:
        raise LimitExceeded(f"{name} filter result longer than {MAX_SIZE}")


class Jinja2TemplateEngine(TemplateEngine):
    """Renders ``{{ state.x }}`` templates safely; every failure is a TemplateError."""

    def __init__(
        self,
        max_output_bytes: int = 65536,
        max_template_chars: int = 20_000,
        max_render_seconds: float = 2.0,
        cache_size: int = 256,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.max_template_chars = max_template_chars
        self.max_render_seconds = max_render_seconds
        self._env = _BoundedSandbox()
        self._compile = functools.lru_cache(maxsize=cache_size)(self._env.compile_checked)

    def render(self, template: str, context: dict) -> str:
        """Render ``template`` against ``context``; TemplateError on any failure."""
        if not isinstance(template, str):
            raise TemplateError(f"a template must be a string, got {type(template).__name__}")
        if len(template) > self.max_template_chars:
            raise TemplateError(f"template longer than {self.max_template_chars} characters")
        token = _budget.set(_Budget(time.monotonic() + self.max_render_seconds, MAX_RANGE_ITEMS))
        try:
            return self._render(template, context)
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error at line {exc.lineno}: {_line(exc)}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template uses an undefined value: {_line(exc)}") from None
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(f"template refused by the sandbox: {_line(exc)}") from None
        except LimitExceeded as exc:
            raise TemplateError(f"template exceeds a limit: {_line(exc)}") from None
        except Exception as exc:
            raise TemplateError(f"template failed: {type(exc).__name__}: {_line(exc)}") from None
        finally:
            _budget.reset(token)

    def _render(self, template: str, context: dict) -> str:
        compiled = self._compile(template)
        chunks: list[str] = []
        size = 0
        for chunk in compiled.generate(context):
            size += len(chunk.encode("utf-8"))
            if size > self.max_output_bytes:
                raise TemplateError(f"template output larger than {self.max_output_bytes} bytes")
            chunks.append(chunk)
            _tick()
        return "".join(chunks)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
