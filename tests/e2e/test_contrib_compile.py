"""Models of onnxruntime's contrib operators compile for each main chip and verify; the
optimized graph exports to ONNX that onnxruntime runs."""

import json

import numpy as np
import onnx
import pytest

import npuc
from npuc.compiler.commands.explain import explain_lines
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_export import export_onnx
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.compiler.passes import optimize
from npuc.ir.decisions import log_of

from .contrib_models import conv_block, decode_step, transformer_block

ort = pytest.importorskip("onnxruntime")
TARGETS = ["warboy-2pe", "rngd", "atom", "x220-enterprise"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("make", [transformer_block, conv_block], ids=["transformer", "conv"])
def test_contrib_model_compiles_and_verifies(make, target):
    r = npuc.verify(make(), target, calibration="random:2")
    assert r.passed, r.to_json()
    # every contrib operator was rewritten into ONNX and npuc operators
    assert not [n for n in r.compiled.graph.nodes if n.domain == "com.microsoft"]
    for m in r.outputs.values():
        assert m["program_vs_ir_sqnr_db"] >= 60


def test_kept_contrib_op_runs_on_the_cpu_with_its_reason():
    r = npuc.verify(decode_step(), "warboy-2pe", calibration="random:2")
    assert r.passed, r.to_json()
    log = log_of(r.compiled.graph)
    kept = [d for d in log if d.stage == "expand-contrib" and d.action == "kept"]
    assert kept and "past key/value cache" in kept[0].reason
    placed = {d.subject: d.action for d in log if d.stage == "partition"}
    assert placed[kept[0].subject] == "cpu"
    files = r.compiled.files
    lines = explain_lines(json.loads(files["schedule.json"]), json.loads(files["decisions.json"]),
                          kept[0].subject)
    assert any(line.startswith("  kept:") and "past key/value cache" in line for line in lines)


@pytest.mark.parametrize("level", [1, 2])
def test_optimized_contrib_model_exports_to_onnx_onnxruntime_runs(level):
    model = transformer_block()
    x = np.random.default_rng(3).standard_normal((1, 8, 32)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = optimize(import_onnx(model), level=level)
    assert not [n for n in graph.nodes if n.domain == "com.microsoft"]
    got = execute(graph, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    exported = export_onnx(graph)
    onnx.checker.check_model(exported)
    again = ort.InferenceSession(exported.SerializeToString(),
                                 providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(again, want, rtol=1e-4, atol=1e-4)


def test_graph_with_kept_contrib_op_exports_with_its_domain():
    graph = optimize(import_onnx(decode_step()), level=2)
    exported = export_onnx(graph)
    assert any(o.domain == "com.microsoft" for o in exported.opset_import)
    onnx.checker.check_model(exported)
    ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
