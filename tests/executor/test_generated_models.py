"""Random models from NNSmith, an independent generator, run by npuc against torch's outputs.

The models, inputs and torch outputs are in tests/data/nnsmith (see its README); neither
torch nor NNSmith is needed here. benchmarks/fuzz_nnsmith.py generates many more and
compares npuc with onnxruntime on them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.load import load_model

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "data", "nnsmith")
RTOL, ATOL = 1e-3, 1e-4

with open(os.path.join(DATA, "cases.json")) as f:
    CASES = json.load(f)


def load_case(name):
    data = np.load(os.path.join(DATA, f"{name}.npz"))
    inputs = {k[len("input:"):]: data[k] for k in data.files if k.startswith("input:")}
    outputs = {k[len("output:"):]: data[k] for k in data.files if k.startswith("output:")}
    return inputs, outputs


def assert_close(name, got, want):
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if want.dtype == np.bool_ or not np.issubdtype(want.dtype, np.number):
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name)


def params():
    for name, case in sorted(CASES.items()):
        marks = []
        if case["status"] == "known_failure":
            marks.append(pytest.mark.xfail(reason=case["reason"], strict=True))
        yield pytest.param(name, id=name, marks=marks)


def test_the_sample_is_complete():
    assert len(CASES) == 30
    for name in CASES:
        for suffix in (".onnx", ".npz"):
            path = os.path.join(DATA, name + suffix)
            assert os.path.getsize(path) < 50_000, path
    assert sum(c["status"] == "match" for c in CASES.values()) >= 20


@pytest.mark.parametrize("name", params())
def test_generated_model(name):
    case = CASES[name]
    graph = load_model(os.path.join(DATA, f"{name}.onnx"))
    inputs, expected = load_case(name)
    got = execute(graph, inputs)
    assert set(got) == set(expected)
    model = onnx.load(os.path.join(DATA, f"{name}.onnx"))
    declared = {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
                for v in model.graph.output}
    for out, want in expected.items():
        have = np.asarray(got[out])
        if case["status"] == "dtype" and have.dtype != want.dtype:
            # torch computes in float64 where the exported model declares float32
            assert have.dtype == declared[out], f"{out}: {have.dtype}, declared {declared[out]}"
            assert_close(out, have, want)
            continue
        assert have.dtype == want.dtype, f"{out}: dtype {have.dtype}, expected {want.dtype}"
        assert_close(out, have, want)
