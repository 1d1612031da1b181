"""The artifacts' JSON text is the standard library's ``json.dumps(indent=1,
sort_keys=True)``, whatever the data (the fast path leaves what it does not know to it)."""

import enum
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.jsontext import dumps


class Level(enum.IntEnum):
    LOW = 1


def _reference(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                     st.sampled_from([Level.LOW, 1.0, 0, "", "é\n\"\\\u2028"]))
_keys = st.one_of(st.text(max_size=4), st.integers(-5, 5))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.lists(st.integers(), max_size=6),
                            st.lists(st.floats(), max_size=6).map(tuple),
                            st.dictionaries(st.text(max_size=4), inner, max_size=5),
                            st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=40)


@settings(max_examples=100, deadline=None)
@given(_json)
def test_same_text_as_the_standard_library(data):
    try:
        want = _reference(data)
    except TypeError:  # keys of mixed types do not sort: both refuse them
        with pytest.raises(TypeError):
            dumps(data)
        return
    assert dumps(data) == want


def test_other_types_go_to_the_standard_library():
    import numpy as np

    assert dumps({"a": [1, 2.5, None, True]}) == _reference({"a": [1, 2.5, None, True]})
    assert dumps({"x": np.float64(0.1), "y": [np.float32(2.0).item()]}) == \
        _reference({"x": np.float64(0.1), "y": [2.0]})
    with pytest.raises(TypeError):
        dumps({"a": np.int64(3)})  # as json.dumps refuses it
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        dumps(loop)
