"""Attack corpus for route/loop conditions: each is refused (bounded by construction) and nothing runs."""

from __future__ import annotations

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
    # nested size: a shared inner list counts once per reference, as == and str() would walk it
    ("[[0]*100000]*100000 == [[0]*100000]*100000", "longer than 100000"),
    ("[[0]*1000]*1000", "repetition result is longer than 100000"),
    ("[[[0]*100]*100]*100 == [[[0]*100]*100]*100", "repetition result is longer than 100000"),
    ("(([0]*400,)*400,)*400", "repetition result is longer than 100000"),
    ("[s]*3", "longer than 100000"),
    ("[[s]*2]*2", "longer than 100000"),
    ("[s, s, s]", "a list literal is longer than 100000"),
    ("(s, s, s) == (s, s, s)", "a tuple literal is longer than 100000"),
    ("{'a': s, 'b': s, 'c': s}", "a dict literal is longer than 100000"),
    ("[[0]*60000] + [[0]*60000]", "longer than 100000"),
    ("[0]*50000 + [[0]*50000] * 2", "longer than 100000"),
]

WITHIN_LIMITS = [
    ("[0]*100000 == [0]*100000", True),
    ("len([[0]*1000]*99) == 99", True),
    ("[s, s] == [s, s]", True),
    ("len(s + s)", 80_000),
    ("[] * 10**9 == []", True),
]


@pytest.mark.parametrize(("expression", "fragment"), COMPILE_TIME)
def test_refused_at_compile_time(expression: str, fragment: str) -> None:
    """Unsafe syntax is refused by compile_expression, naming the offending text."""
    with pytest.raises(ExpressionError) as info:
        compile_expression(expression)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("expression", "fragment"), RUN_TIME)
def test_resource_blowups_fail_fast(expression: str, fragment: str) -> None:
    """Huge numbers, strings and lists, flat or nested, are refused with an ExpressionError before they are built."""
    context = {"state": {"s": "x" * 40_000}}
    with pytest.raises(ExpressionError) as info:
        evaluate(expression, context)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("expression", "expected"), WITHIN_LIMITS)
def test_values_within_the_limits_still_evaluate(expression: str, expected: object) -> None:
    """The size accounting refuses only what passes the limit: values up to it evaluate as usual."""
    assert evaluate(expression, {"state": {"s": "x" * 40_000}}) == expected


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
