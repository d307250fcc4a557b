"""Attack corpus for templates, plus the renders users rely on: sandboxed, strict, bounded."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from ruvon_edge.errors import TemplateError
from ruvon_edge.implementations.templating.jinja2 import Jinja2TemplateEngine


class Order(BaseModel):
    order_id: str
    amount: float
    lines: list[dict] = []


CONTEXT = {
    "state": Order(order_id="A1", amount=12.5, lines=[{"sku": "X", "qty": 2}]),
    "workflow_id": "w-1",
}

ATTACKS = [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "unsafe"),
    ("{{ joiner.__init__.__globals__.os }}", "unsafe"),
    ("{{ state.__class__ }}", "unsafe"),
    ("{{ state.model_dump_json(indent=10**8) }}", "unsafe"),
    ("{{ state.model_config }}", "unsafe"),
    ("{% include '/etc/passwd' %}", "include"),
    ("{% import 'os' as os %}", "import"),
    ("{% from 'os' import system %}", "import"),
    ("{% extends 'base.html' %}", "extends"),
    ("{{ range(10**9)|list }}", "range()"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "range()"),
    ("{% for i in range(100000) %}{{ 'x'*1000 }}{% endfor %}", "output larger than 65536 bytes"),
    ("{{ undefined_var }}", "undefined"),
    ("{{ state.no_such_field }}", "no_such_field"),
    ("{{ '{0.__class__}'.format(1) }}", "unsafe"),
    ("{{ '{a.__class__}'.format_map({'a': 1}) }}", "unsafe"),
    ("{{ '{0.__init__.__globals__}'.format(cycler) }}", "unsafe"),
    ("{{ '{:>999999999}'.format(1) }}", "str.format()"),
    ("{{ '{:{w}}'.format(1, w=999999999) }}", "str.format()"),
    ("{{ '%099999999d'|format(1) }}", "format filter"),
    ("{{ '%*d'|format(999999999, 1) }}", "format filter"),
    ("{{ 10**10**10 }}", "exceeds a limit"),
    ("{{ 2**100000 }}", "too large"),
    ("{{ 'a'*10**9 }}", "longer than 100000"),
    ("{{ [1]*10**9 }}", "longer than 100000"),
    ("{{ '%0999999999d' % 1 }}", "string formatting"),
    ("{% set x = 'ab' %}" + "{% set x = x ~ x %}" * 60 + "{{ x|length }}", "larger than 100000"),
    (
        "{% set x = [1] %}" + "{% set x = [x, x] %}" * 60 + "{{ x }}",
        "a literal is longer than 100000",
    ),
    (
        "{% set x = [1] %}" + "{% set x = [x, x] %}" * 60 + "{{ x|string|length }}",
        "a literal is longer than 100000",
    ),
    ("{{ 'x'|center(10**9) }}", "center"),
    ("{{ 'x'.center(10**9) }}", "center"),
    ("{{ 'x'.ljust(10**9) }}", "ljust"),
    ("{{ 'a\nb'|indent(10**9) }}", "indent"),
    ("{{ ('x'*50000)|replace('', 'y'*50000) }}", "replace()"),
    ("{{ ('x'*50000).replace('', 'y'*50000) }}", "replace()"),
    ("{{ (['x'*50000]*1000)|join(',') }}", "repetition result is longer than 100000"),
    ("{% set x = ['x'*50000] %}{{ (x + x + x)|join(',') }}", "longer than 100000"),
    ("{{ [1]|batch(10**9, 0)|list }}", "batch"),
    ("{{ 5|round(-10**18) }}", "round"),
    ("{{ lipsum(10**6) }}", "undefined"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ("{{ x", "syntax error at line 1"),
    ("{% for %}", "syntax error"),
    ("{{ state.lines.append(1) }}", "unsafe"),
    # nested size: literals and repetition are weighed with what they contain
    ("{{ [[0]*100000]*100000 == [[0]*100000]*100000 }}", "longer than 100000"),
    ("{{ [[0]*1000]*1000 }}", "repetition result is longer than 100000"),
    (
        "{% set a = [1] %}"
        + "{% set a = [a, a] %}" * 40
        + "{% set b = [1] %}"
        + "{% set b = [b, b] %}" * 40
        + "{{ a == b }}",
        "a literal is longer than 100000",
    ),  # fmt: skip
    ("{{ ([0]*60000, [0]*60000) == () }}", "a literal is longer than 100000"),
    ("{{ {'a': [0]*60000, 'b': [0]*60000} == {} }}", "a literal is longer than 100000"),
    ("{% set x = [0]*100000 %}{{ [x] + [x] == [] }}", "longer than 100000"),
]


@pytest.mark.parametrize(("template", "fragment"), ATTACKS)
def test_attack_is_refused_quickly(template: str, fragment: str) -> None:
    """Each hostile template raises a one-line TemplateError naming the problem."""
    engine = Jinja2TemplateEngine()
    with pytest.raises(TemplateError) as info:
        engine.render(template, CONTEXT)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_exponential_macro_hits_the_deadline() -> None:
    """A macro that doubles its work per level is stopped by the per-render deadline."""
    engine = Jinja2TemplateEngine(max_render_seconds=0.3)
    template = (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    )
    with pytest.raises(TemplateError, match="took too long"):
        engine.render(template, CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{% set r = state.rows %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}done",
        "{% set r = state.rows %}{% for a in r %}{% for b in r if b < 0 %}x{% endfor %}{% endfor %}",
        "{% set r = state.rows %}{{ r|map('string')|list|length }}{% for a in r %}{% for b in r %}"
        "{% else %}{% endfor %}{% endfor %}",
    ],
)
def test_loops_with_empty_bodies_hit_the_deadline(template: str) -> None:
    """Nested loops over state check the deadline on every iteration, even when their body does nothing."""
    engine = Jinja2TemplateEngine(max_render_seconds=0.2)
    with pytest.raises(TemplateError, match="took too long"):
        engine.render(template, {"state": {"rows": list(range(20_000))}})


def test_template_size_is_capped() -> None:
    """A template longer than max_template_chars is refused before it is compiled."""
    engine = Jinja2TemplateEngine(max_template_chars=100)
    with pytest.raises(TemplateError, match="longer than 100 characters"):
        engine.render("x" * 101, CONTEXT)


def test_output_cap_is_configurable() -> None:
    """max_output_bytes bounds the rendered bytes, counted as UTF-8."""
    engine = Jinja2TemplateEngine(max_output_bytes=10)
    assert engine.render("{{ 'é' * 5 }}", CONTEXT) == "ééééé"
    with pytest.raises(TemplateError, match="larger than 10 bytes"):
        engine.render("{{ 'é' * 6 }}", CONTEXT)


def test_refused_render_does_not_touch_files(tmp_path) -> None:
    """A template trying to reach the file system through the sandbox creates nothing."""
    target = tmp_path / "pwned"
    engine = Jinja2TemplateEngine()
    for template in (
        f"{{{{ cycler.__init__.__globals__.__builtins__.open('{target}', 'w') }}}}",
        f"{{% include '{target}' %}}",
    ):
        with pytest.raises(TemplateError):
            engine.render(template, CONTEXT)
    assert not target.exists()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("https://example.test/ship/{{ state.order_id }}", "https://example.test/ship/A1"),
        ("{{ state.amount * 2 }}", "25.0"),
        ("{{ '%.2f'|format(state.amount) }}", "12.50"),
        ("{{ state.order_id ~ '-' ~ workflow_id }}", "A1-w-1"),
        ("{% for l in state.lines %}{{ l.sku }}x{{ l.qty }}{% endfor %}", "Xx2"),
        ("{{ state.lines|map(attribute='sku')|join(',') }}", "X"),
        ("{{ {'id': state.order_id}|tojson }}", '{"id": "A1"}'),
        ("{{ state.order_id|lower }}", "a1"),
        ("{{ missing|default('none') }}", "none"),
        ("{% if state.amount > 10 %}big{% else %}small{% endif %}", "big"),
        ("{{ range(3)|list }}", "[0, 1, 2]"),
        ("{{ 'a,b'.split(',')|length }}", "2"),
        ("plain text", "plain text"),
    ],
)
def test_useful_templates_render(template: str, expected: str) -> None:
    """Ordinary templates over a pydantic state render to the expected text."""
    assert Jinja2TemplateEngine().render(template, CONTEXT) == expected


def test_dict_state_and_cached_template_render_per_context() -> None:
    """The same template (compiled once) renders each context's own values."""
    engine = Jinja2TemplateEngine()
    template = "{{ state.order_id }}:{{ state.amount }}"
    assert engine.render(template, {"state": {"order_id": "B2", "amount": 1}}) == "B2:1"
    assert engine.render(template, {"state": {"order_id": "C3", "amount": 2}}) == "C3:2"
