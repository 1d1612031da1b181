"""The rewrite patterns' hand-written parser reads what lark reads from the grammar."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark, Transformer
from lark.exceptions import LarkError

from npuc.compiler.passes.base import registered
from npuc.compiler.passes.pattern import GRAMMAR, Anything, Call, Number, Var, parse_pattern
from npuc.compiler.passes.rewrite import Rule


class _Build(Transformer):
    def call(self, items):
        name, shared, op, *args = items
        domain, _, op_type = str(op).rpartition("::")
        args = tuple(a for a in args if a is not None)
        return Call(op_type, domain, args, None if name is None else str(name),
                    shared is not None)

    def var(self, items):
        return Var(str(items[0]))

    def optional(self, items):
        return Var(str(items[0]), optional=True)

    def number(self, items):
        return Number(float(items[0]))

    def anything(self, _):
        return Anything()


LARK = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)


def by_lark(text):
    return _Build().transform(LARK.parse(text))


def _rules(cls=Rule):
    for sub in cls.__subclasses__():
        yield sub
        yield from _rules(sub)


def _patterns():
    registered()  # imports every pass module, so that every rule is defined
    for rule in _rules():
        texts = (rule.pattern,) if isinstance(rule.pattern, str) else rule.pattern
        yield from (t for t in texts if t)


def test_every_rule_pattern_parses_as_lark_parses_it():
    patterns = sorted(set(_patterns()))
    assert len(patterns) > 30
    for text in patterns:
        assert parse_pattern(text) == by_lark(text), text


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,3}", fullmatch=True)
OPS = st.from_regex(r"([a-z][a-z.]{0,4}::)?[A-Z][A-Za-z0-9_]{0,4}", fullmatch=True)
NUMBERS = st.from_regex(r"-?(\d{1,3}\.?\d{0,2}|\.\d{1,2})([eE][+-]?\d{1,2})?", fullmatch=True)
SPACE = st.sampled_from(["", " ", "  ", "\n"])


@st.composite
def _call(draw, depth=0):
    args = draw(st.lists(_arg(depth + 1), max_size=3))
    name = draw(st.one_of(st.just(""), NAMES.map(lambda n: n + ":")))
    shared = draw(st.sampled_from(["", "~"]))
    sep = "," + draw(SPACE)
    return f"{name}{shared}{draw(OPS)}({draw(SPACE)}{sep.join(args)})"


def _arg(depth):
    leaves = st.one_of(NAMES, NAMES.map(lambda n: n + "?"), NUMBERS, st.just("_"))
    return leaves if depth > 2 else st.one_of(leaves, _call(depth))


@settings(max_examples=200, deadline=None)
@given(_call())
def test_generated_patterns_parse_as_lark_parses_them(text):
    assert parse_pattern(text) == by_lark(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="Ab(),:?~_ x1.-", max_size=12))
def test_any_text_is_refused_by_both_or_read_alike(text):
    try:
        want = by_lark(text)
    except LarkError:
        want = None
    if not isinstance(want, Call):
        with pytest.raises(ValueError):
            parse_pattern(text)
    else:
        assert parse_pattern(text) == want


@pytest.mark.parametrize("text, column", [("Relu(x", 7), ("Relu(x,)", 8), ("Relu($)", 6),
                                          ("Relu(x))", 8)])
def test_a_malformed_pattern_names_the_column(text, column):
    with pytest.raises(ValueError, match=f"column {column}"):
        parse_pattern(text)


def test_a_pattern_must_start_with_an_operator():
    with pytest.raises(ValueError, match="must start with an operator"):
        parse_pattern("x")
