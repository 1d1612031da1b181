"""--accuracy requirements: syntax, errors, and judging an agreement."""

import numpy as np
import pytest

from npuc.compiler.accuracy import agreement
from npuc.compiler.quantize.requirement import parse_requirement
from npuc.ir.errors import NpucError


def test_terms_parse_and_print_back():
    r = parse_requirement("argmax<=1%, sqnr>=30,cosine>=0.999")
    assert str(r) == "argmax<=1%,sqnr>=30,cosine>=0.999"
    assert r.answer_mode == "argmax" and r.axis == -1
    assert parse_requirement("ctc:1<=0%").axis == 1
    assert parse_requirement("off") is None
    answer = parse_requirement("answer:1<=2%")
    assert (str(answer), answer.answer_mode, answer.axis) == ("answer:1<=2%", "auto", 1)


def test_the_default_judges_each_output_by_its_own_answer():
    from npuc.compiler.quantize.requirement import DEFAULT

    assert parse_requirement(DEFAULT).answer_mode == "auto"


@pytest.mark.parametrize("bad", ["argmax>=1%", "sqnr>=30%", "psnr>=3", "argmax<=150%",
                                 "sqnr:1>=3"])
def test_wrong_terms_are_named(bad):
    with pytest.raises(NpucError, match="--accuracy"):
        parse_requirement(bad)


def test_shortfall_is_zero_exactly_when_met():
    ref = {"y": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])}
    got = {"y": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.9]])}
    a = agreement(ref, got)
    assert parse_requirement("argmax<=25%").met(a)
    assert not parse_requirement("argmax<=10%").met(a)
    assert parse_requirement("argmax<=10%").shortfall(a) == pytest.approx(0.15)
    assert not parse_requirement("sqnr>=30").met(a)
