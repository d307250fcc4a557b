"""Attack corpus for route/loop conditions: each is refused quickly and nothing runs."""

from __future__ import annotations

import time

import pytest

from ruvon_edge.errors import ExpressionError
from ruvon_edge.expressions import compile_expression, evaluate

# (expression, fragment expected in the one-line error)
COMPILE_TIME = [
    ("state.__class__", "'__class__'"),
    ("().__class__.__bases__[0].__subclasses__()", "method call"),
    ("state.__class__.__subclasses__", "'__subclasses__'"),
    ("reserve.__globals__", "'__globals__'"),
    ("_private", "'_private'"),
    ("(x for x in []).gi_frame", "generator expression"),
    ("[x for x in state]", "comprehension"),
    ("{k: 1 for k in state}", "comprehension"),
    ("'{0.__class__}'.format(state)", "method call"),
    ("lambda: 1", "lambda"),
    ("(lambda: 1)()", "lambda"),
    ("__import__('os')", "'__import__'"),
    ("__import__('os').system('true')", "method call"),
    ("import os", "invalid expression"),
    ("getattr(state, 'x')", "'getattr'"),
    ("open('/etc/passwd')", "'open'"),
    ("eval('1')", "'eval'"),
    ("exec('1')", "'exec'"),
    ("compile('1', 'f', 'eval')", "'compile'"),
    ("type(state)", "'type'"),
    ("vars()", "'vars'"),
    ("f'{state}'", "f-string"),
    ("(y := 1)", "assignment expression"),
    ("[*state]", "unpacking"),
    ("{**state}", "unpacking"),
    ("len(*state)", "unpacking"),
    ("max(state, key=len)", "keyword argument"),
    ("state.items()", "method call"),
    ("'abc'.upper()", "method call"),
    ("~1", "'~'"),
    ("b'bytes'", "bytes literal"),
    ("state is 5", "'is'"),
    ("await state", "await"),
    ("x" + " + x" * 400, "more than 300 nodes"),
    ("-" * 120 + "1", "deeper than"),
    ("(" * 300 + "1" + ")" * 300, "invalid expression"),
    ("1" * 2001, "longer than 2000"),
]

RUN_TIME = [
    ("10**10**10", "too large"),
    ("2**100000", "too large"),
    ("(-3)**100000", "too large"),
    ("10**100", "exceeds 10**100"),
    ("9**99 * 9**99 * 9**99", "exceeds 10**100"),
    ("'a'*10**9", "longer than 100000"),
    ("10**9*'a'", "longer than 100000"),
    ("[1]*10**9", "longer than 100000"),
    ("(1,)*10**9", "longer than 100000"),
    ("s*3", "longer than 100000"),
    ("s + s + s", "longer than 100000"),
    ("'%0999999999d' % 1", "string formatting"),
    ("'%(x)s' % state", "string formatting"),
    ("round(5, -10**18)", "round() digits"),
    ("2.0**100000", "OverflowError"),
]


@pytest.mark.parametrize(("expression", "fragment"), COMPILE_TIME)
def test_refused_at_compile_time(expression: str, fragment: str) -> None:
    """Unsafe syntax is refused by compile_expression, naming the offending text, in well under 2 s."""
    start = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        compile_expression(expression)
    assert time.monotonic() - start < 2
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("expression", "fragment"), RUN_TIME)
def test_resource_blowups_fail_fast(expression: str, fragment: str) -> None:
    """Huge numbers, strings and lists are refused before they are built, in well under 2 s."""
    context = {"state": {"s": "x" * 40_000}}
    start = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        evaluate(expression, context)
    assert time.monotonic() - start < 2
    assert fragment in str(info.value)


def test_attack_does_not_execute_anything(tmp_path) -> None:
    """Even a refused expression that tries to write a file leaves the file system untouched."""
    target = tmp_path / "pwned"
    attempts = [
        f"open({str(target)!r}, 'w').write('x')",
        f"__import__('pathlib').Path({str(target)!r}).touch()",
        f"().__class__.__base__.__subclasses__()[0]({str(target)!r})",
    ]
    for text in attempts:
        with pytest.raises(ExpressionError):
            evaluate(text, {"state": {}})
    assert not target.exists()


def test_state_values_cannot_smuggle_code() -> None:
    """A state string that looks like code is data: it is compared, never evaluated."""
    state = {"name": "__import__('os').system('false')"}
    assert evaluate("name == \"__import__('os').system('false')\"", {"state": state}) is True


def test_functions_cannot_be_rebound_from_context() -> None:
    """A context key named like an allowed function does not replace the safe function."""
    context = {"state": {}, "len": lambda _x: "hijacked"}
    assert evaluate("len([1, 2])", context) == 2
