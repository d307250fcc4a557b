"""The safe expression language: what users can write in routes and loop conditions."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from ruvon_edge.errors import ExpressionError
from ruvon_edge.expressions import CompiledExpression, compile_expression, evaluate
from ruvon_edge.implementations.expression_evaluator.simple import SimpleExpressionEvaluator


class Address(BaseModel):
    country: str
    zip: str | None = None


class Order(BaseModel):
    model_config = ConfigDict(extra="allow")
    amount: float
    country: str
    tags: list[str] = []
    address: Address | None = None


STATE = {
    "amount": 80,
    "country": "DE",
    "customer": {"name": "Ada", "tier": "gold", "limits": {"daily": 500}},
    "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 5}],
    "note": None,
    "items_count": 2,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("state.amount > 50 and state.country in ['DE','FR']", True),
        ("state.amount > 100 or state.country == 'US'", False),
        ("amount > 50", True),
        ("country not in ('US', 'CA')", True),
        ("state.customer.limits.daily >= amount * 5", True),
        ("state['customer']['name'] == 'Ada'", True),
        ("items[1].qty + items[0]['qty']", 7),
        ("items[-1].sku", "B"),
        ("len(items) == items_count", True),
        ("min(amount, 60)", 60),
        ("max([1, 9, 3])", 9),
        ("abs(-amount)", 80),
        ("round(amount / 3, 2)", 26.67),
        ("lower(country) == 'de'", True),
        ("upper(customer.tier)", "GOLD"),
        ("note is None", True),
        ("customer is not None", True),
        ("not note", True),
        ("10 < amount <= 80", True),
        ("'high' if amount > 50 else 'low'", "high"),
        ("amount // 7, amount % 7", (11, 3)),
        ("2 ** 10 - 24", 1000),
        ("{'a': 1, 'b': [1, 2]}['b'][1]", 2),
        ("{1, 2} == {2, 1}", True),
        ("'go' + 'ld' == customer.tier", True),
        ("items[0:1][0].sku", "A"),
        ("-amount + 100", 20),
        ("amount > 50 and 'yes'", "yes"),
        ("None or 0 or 'last'", "last"),
    ],
)
def test_expressions_over_dict_state(expression: str, expected: object) -> None:
    """Expressions read dict state by attribute, index and bare name and compute the expected value."""
    assert evaluate(expression, {"state": STATE}) == expected


def test_pydantic_state_fields_extras_and_nested_models() -> None:
    """A pydantic state exposes its fields, its extra fields and nested models to expressions."""
    state = Order(
        amount=75, country="FR", tags=["vip"], address=Address(country="FR"), channel="pos"
    )
    context = {"state": state}
    assert evaluate("state.amount > 50 and state.country in ['DE','FR']", context) is True
    assert evaluate("'vip' in tags and address.country == country", context) is True
    assert evaluate("channel == 'pos'", context) is True
    assert evaluate("state['amount']", context) == 75
    assert evaluate("address.zip is None", context) is True


def test_context_names_shadow_state_fields() -> None:
    """Context keys such as ``item`` and ``loop_index`` resolve before state fields of the same name."""
    context = {"state": {"item": "state-item", "limit": 3}, "item": {"qty": 4}, "loop_index": 2}
    assert evaluate("item.qty > limit and loop_index < 3", context) is True


def test_compiled_expression_is_reusable_and_cached() -> None:
    """A compiled expression can be evaluated many times, and compiling the same text returns it from cache."""
    compiled = compile_expression("amount > threshold")
    assert isinstance(compiled, CompiledExpression)
    assert compile_expression("amount > threshold") is compiled
    assert evaluate(compiled, {"state": {"amount": 5}, "threshold": 1}) is True
    assert evaluate(compiled, {"state": {"amount": 0}, "threshold": 1}) is False


@pytest.mark.parametrize(
    ("expression", "context", "fragment"),
    [
        ("state.missing > 1", {"state": {}}, "no field 'missing'"),
        ("missing", {"state": {"a": 1}}, "no field 'missing'"),
        ("amount / 0", {"state": {"amount": 1}}, "ZeroDivisionError"),
        ("amount + 'x'", {"state": {"amount": 1}}, "TypeError"),
        ("items[5]", {"state": {"items": [1]}}, "IndexError"),
        ("amount.real", {"state": {"amount": 1}}, "cannot read 'real'"),
        ("lower(amount)", {"state": {"amount": 1}}, "lower() needs a string"),
        ("state.nope", {"state": Order(amount=1, country="DE")}, "no field 'nope'"),
        ("anything", {}, "unknown name 'anything'"),
    ],
)
def test_evaluation_errors_name_the_expression(
    expression: str, context: dict, fragment: str
) -> None:
    """A failing evaluation raises one-line ExpressionError naming the expression and the reason."""
    with pytest.raises(ExpressionError) as info:
        evaluate(expression, context)
    message = str(info.value)
    assert repr(expression) in message and fragment in message
    assert "\n" not in message


def test_pydantic_model_methods_are_not_attributes() -> None:
    """Model methods like ``model_dump`` are not readable; only fields are."""
    with pytest.raises(ExpressionError, match="no field 'model_dump'"):
        evaluate("state.model_dump", {"state": Order(amount=1, country="DE")})


def test_dict_attribute_reads_the_key_not_the_method() -> None:
    """``state.items`` on a dict state is the 'items' key, never dict.items."""
    assert evaluate("len(state.items)", {"state": {"items": [1, 2, 3]}}) == 3


@pytest.mark.parametrize("text", ["", "   ", "1 +", "amount >", "a = 1", "x\n\ny = 2"])
def test_syntax_errors_are_expression_errors(text: str) -> None:
    """Empty or unparsable text is refused at compile time with ExpressionError."""
    with pytest.raises(ExpressionError):
        compile_expression(text)


def test_multiline_expression_in_brackets_is_fine() -> None:
    """An expression split across lines inside brackets (as YAML folds it) still works."""
    assert evaluate("(amount > 1\n and amount < 10)", {"state": {"amount": 5}}) is True


def test_simple_evaluator_returns_bool_and_checks() -> None:
    """SimpleExpressionEvaluator answers with a real bool and its check() refuses unsafe text."""
    evaluator = SimpleExpressionEvaluator()
    assert evaluator.evaluate("items", {"state": {"items": [1]}}) is True
    assert evaluator.evaluate("items", {"state": {"items": []}}) is False
    evaluator.check("state.amount > 1")
    with pytest.raises(ExpressionError, match="lambda"):
        evaluator.check("(lambda: 1)()")
