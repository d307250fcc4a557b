"""The safe expression language of route conditions and loops, interpreted from the AST.

Conditions come from workflow definitions and are evaluated against state that
users control, so nothing here ever reaches ``eval``: the text is parsed with
``ast``, every node is checked against a small whitelist at compile time, and a
tiny interpreter walks the tree. Each arithmetic step is bounded (integer
magnitude, string/list length) before it is computed, so ``10**10**10`` or
``'a'*10**9`` fail in microseconds instead of eating the device. Sizes are
nested: a value's ``weight`` counts every element and character reachable from
it, a shared part once per reference (what ``==`` or ``str()`` would walk), and
no value built by repetition, concatenation or a literal may weigh more than
``MAX_SIZE``; so ``[[0]*100000]*100000 == [[0]*100000]*100000`` is refused
before the outer list exists. Values read from the state weigh what they weigh.

The language: literals (incl. list/tuple/dict/set), names (``state``, other
context keys such as ``item``, then bare state fields), attribute and index
access (no name starting with ``_``; attributes read dict keys and pydantic
model fields, never methods), comparisons, ``and/or/not``, ``in``, ``is None``,
``+ - * / // % **``, ``a if c else b`` and the functions ``len min max abs
round lower upper``. Stdlib only: pydantic models are recognised through
``sys.modules`` without importing pydantic.
"""

from __future__ import annotations

import ast
import operator
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ruvon_edge.errors import ExpressionError

MAX_TEXT_CHARS = 2000
MAX_NODES = 300
MAX_DEPTH = 50
MAX_INT = 10**100
MAX_INT_BITS = MAX_INT.bit_length()
MAX_SIZE = 100_000
MAX_ROUND_DIGITS = 100


class LimitExceeded(ValueError):
    """An operation would produce a value larger than the language allows."""


def _lower(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"lower() needs a string, got {type(value).__name__}")
    return value.lower()


def _upper(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"upper() needs a string, got {type(value).__name__}")
    return value.upper()


def _round(value: Any, ndigits: Any = None) -> Any:
    # round(5, -10**18) would compute 10**(10**18): bound the digits first.
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise LimitExceeded(f"round() digits must be an int within ±{MAX_ROUND_DIGITS}")
    return round(value, ndigits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "lower": _lower,
    "upper": _upper,
}

_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_BINOP_BY_SYMBOL = dict(_BINOPS.values())

_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}

_ALLOWED_NODES = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Load,
    *_BINOPS,
    *_CMPOPS,
    *_UNARY,
)

_NODE_NAMES = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression",
    ast.Starred: "unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Invert: "the '~' operator",
}


_CONTAINERS = (list, tuple, set, frozenset, dict)
_SIZED = (str, bytes, *_CONTAINERS)


def weight(value: Any, limit: int = MAX_SIZE) -> int:
    """Elements and characters reachable from ``value``, a shared part counted per reference.

    Raises LimitExceeded as soon as the count passes ``limit``, so the walk
    itself is bounded (each shared part is walked once, then looked up).
    """
    memo: dict[int, int] = {}
    too_long = LimitExceeded(f"value is longer than {limit} (counting nested elements)")

    def walk(item: Any, budget: int) -> int:  # the weight of item; too_long past budget
        if isinstance(item, str | bytes):
            total = len(item)
        elif not isinstance(item, _CONTAINERS):
            return 0
        elif id(item) in memo:
            total = memo[id(item)]
        else:
            total = len(item)
            if total <= budget:
                flat = (x for kv in item.items() for x in kv) if isinstance(item, dict) else item
                for part in [x for x in flat if isinstance(x, _SIZED)]:
                    total += walk(part, budget - total)
            memo[id(item)] = total
        if total > budget:
            raise too_long
        return total

    try:
        return walk(value, limit)
    except RecursionError:
        raise LimitExceeded("value nests too deeply") from None


def bounded(value: Any, what: str = "value") -> Any:
    """``value`` itself, once it is known to weigh at most ``MAX_SIZE`` (else LimitExceeded)."""
    try:
        weight(value)
    except LimitExceeded:
        raise LimitExceeded(
            f"{what} is longer than {MAX_SIZE} (counting nested elements)"
        ) from None
    return value


def checked_binop(symbol: str, left: Any, right: Any) -> Any:
    """Apply ``left <symbol> right`` after checking the result stays small (else LimitExceeded).

    Shared with the template sandbox so both refuse the same blow-ups.
    """
    if symbol == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise LimitExceeded(f"{left} ** {right} is too large")
    elif symbol == "*":
        count, seq = (right, left) if _is_int(right) else (left, right)
        if _is_int(count) and isinstance(seq, str | bytes | list | tuple) and count > 0:
            try:
                too_long = weight(seq, MAX_SIZE // count) * count > MAX_SIZE
            except LimitExceeded:
                too_long = True
            if too_long:
                raise LimitExceeded(f"repetition result is longer than {MAX_SIZE}")
    elif symbol == "+" and isinstance(left, str | bytes | list | tuple):
        if weight(left) + weight(right) > MAX_SIZE:
            raise LimitExceeded(f"concatenation result is longer than {MAX_SIZE}")
    elif symbol == "%" and isinstance(left, str | bytes):
        raise LimitExceeded("'%' string formatting is not allowed")
    result = _BINOP_BY_SYMBOL[symbol](left, right)
    if _is_int(result) and abs(result) >= MAX_INT:
        raise LimitExceeded("integer result exceeds 10**100")
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _segment(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node) or type(node).__name__


def _short(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _refuse(text: str, node: ast.AST, what: str) -> ExpressionError:
    seg = _segment(text, node)
    where = "" if seg.strip() == text.strip() else f" in {_short(text)}"
    return ExpressionError(f"{what} is not allowed: {_short(seg)}{where}")


def _check_node(text: str, node: ast.AST) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        what = _NODE_NAMES.get(type(node), f"'{type(node).__name__}'")
        raise _refuse(text, node, what)
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name.startswith("_"):
            raise _refuse(text, node, f"the name {name!r} (leading underscore)")
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise _refuse(text, node, f"a {type(node.value).__name__} literal")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _refuse(text, node, "a method call")
        if node.func.id not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            raise _refuse(text, node, f"calling {node.func.id!r} (functions: {allowed})")
        if node.keywords:
            raise _refuse(text, node, "a keyword argument")
    elif isinstance(node, ast.Dict) and any(k is None for k in node.keys):
        raise _refuse(text, node, "unpacking")
    elif isinstance(node, ast.Compare):
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (
                isinstance(right, ast.Constant) and right.value in (None, True, False)
            ):
                raise _refuse(text, node, "'is' with anything but None/True/False")


def _depth(node: ast.AST) -> int:
    children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
    return 1 + max((_depth(c) for c in children), default=0)


@dataclass(frozen=True)
class CompiledExpression:
    """A checked expression: its source text and its whitelisted AST."""

    text: str
    tree: ast.Expression

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Return the value of the expression in ``context``; ExpressionError on failure."""
        try:
            return _Interpreter(context).value_of(self.tree.body)
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
            raise ExpressionError(f"cannot evaluate {_short(self.text)}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Missing | LimitExceeded):
        return str(exc)
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class _Missing(LookupError):
    pass


class _Interpreter:
    """Walks a whitelisted AST; one instance per evaluation."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context

    def value_of(self, node: ast.expr) -> Any:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.context:
            return self.context[node.id]
        if "state" not in self.context:
            raise _Missing(f"unknown name {node.id!r}")
        return read_field(self.context["state"], node.id)

    def _Attribute(self, node: ast.Attribute) -> Any:
        return read_field(self.value_of(node.value), node.attr)

    def _Subscript(self, node: ast.Subscript) -> Any:
        obj = self.value_of(node.value)
        key = self.value_of(node.slice)
        if _is_model(obj) and isinstance(key, str):
            return read_field(obj, key)
        if not isinstance(obj, Mapping | Sequence):
            raise TypeError(f"{type(obj).__name__} cannot be indexed")
        return obj[key]

    def _Slice(self, node: ast.Slice) -> slice:
        parts = (node.lower, node.upper, node.step)
        return slice(*(None if p is None else self.value_of(p) for p in parts))

    def _List(self, node: ast.List) -> list[Any]:
        return bounded([self.value_of(e) for e in node.elts], "a list literal")

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return bounded(tuple(self.value_of(e) for e in node.elts), "a tuple literal")

    def _Set(self, node: ast.Set) -> set[Any]:
        return bounded({self.value_of(e) for e in node.elts}, "a set literal")

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        pairs = zip(node.keys, node.values, strict=True)
        return bounded({self.value_of(k): self.value_of(v) for k, v in pairs}, "a dict literal")  # type: ignore[arg-type]

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.value_of(operand)
            if isinstance(node.op, ast.And) != bool(value):
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        return _UNARY[type(node.op)](self.value_of(node.operand))

    def _BinOp(self, node: ast.BinOp) -> Any:
        symbol = _BINOPS[type(node.op)][0]
        return checked_binop(symbol, self.value_of(node.left), self.value_of(node.right))

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.value_of(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.value_of(right_node)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.value_of(node.body) if self.value_of(node.test) else self.value_of(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        func = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        return func(*(self.value_of(a) for a in node.args))


def _is_model(obj: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(obj, pydantic.BaseModel)


def read_field(obj: Any, name: str) -> Any:
    """Read ``name`` from a dict (key) or a pydantic model (field or extra); never a method."""
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
    elif _is_model(obj):
        if name in type(obj).model_fields:
            return getattr(obj, name)
        extra = obj.__pydantic_extra__
        if extra and name in extra:
            return extra[name]
    else:
        raise TypeError(f"cannot read {name!r} of a {type(obj).__name__} value")
    raise _Missing(f"no field {name!r}")


def compile_expression(text: str) -> CompiledExpression:
    """Parse and check ``text`` (cached); raise ExpressionError naming the offending part."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, got {type(text).__name__}")
    return _compile(text)


@lru_cache(maxsize=1024)
def _compile(text: str) -> CompiledExpression:
    if not text.strip():
        raise ExpressionError("empty expression")
    if len(text) > MAX_TEXT_CHARS:
        raise ExpressionError(f"expression longer than {MAX_TEXT_CHARS} characters")
    try:
        with warnings.catch_warnings():
            # invalid escapes etc. warn at parse time; refuse them instead of printing
            warnings.simplefilter("error")
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, Warning, MemoryError, RecursionError) as exc:
        detail = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise ExpressionError(f"invalid expression {_short(text)}: {detail}") from None
    nodes = list(ast.walk(tree))
    if sum(isinstance(n, ast.expr) for n in nodes) > MAX_NODES:
        raise ExpressionError(f"expression {_short(text)} has more than {MAX_NODES} nodes")
    for node in nodes:
        _check_node(text.strip(), node)
    if _depth(tree.body) > MAX_DEPTH:
        raise ExpressionError(f"expression {_short(text)} nests deeper than {MAX_DEPTH}")
    return CompiledExpression(text, tree)


def evaluate(expr: str | CompiledExpression, context: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` (text, compiled once and cached, or compiled) against ``context``."""
    compiled = expr if isinstance(expr, CompiledExpression) else compile_expression(expr)
    return compiled.evaluate(context)
