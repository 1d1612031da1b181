"""The accuracy recovery's search: the fewest of the most sensitive layers move, and the
per-layer sensitivity measured by fan-out workers ranks the layers as one process does."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.quantize import quantize
from npuc.ir.decisions import log_of


def _deep(layers=6, width=12, seed=0):
    """A chain of MatMul+Tanh layers with a few large weights: int8 loses a little on
    each, so a tight requirement needs several of them in a wider format."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], {}, "x"
    for i in range(layers):
        w = rng.normal(0, 1 / np.sqrt(width), (width, width)).astype(np.float32)
        w[i % width, (i * 5) % width] = 4.0
        inits[f"w{i}"] = w
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
                  helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"act{i}")]
        x = f"t{i}"
    g = helper.make_graph(
        nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", width])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return npuc.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _cal(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(size=(1, 12)).astype(np.float32)} for _ in range(n)]


def test_the_fewest_sensitive_layers_move_to_the_wider_format():
    g = _deep()
    q = quantize(g, "rngd", _cal(), precision="int8", accuracy="sqnr>=30", progress=False)
    log = [d for d in log_of(q) if d.stage == "accuracy"]
    assert log[-1].action == "met", [d.reason for d in log]
    moved = q.meta["quantize"]["layers"]
    assert 0 < len(moved) < 6
    kept = [d for d in log[:-1] if d.data["kept"] and d.action != "observer"]
    # one fewer of the ranked layers in the same format does not meet it
    fewer = [d for d in log[:-1] if not d.data["kept"] and d.action == kept[-1].action]
    assert all(d.data["sqnr_db"] < 30 for d in fewer
               if d.data["total_latency_cost_s"] <= kept[-1].data["total_latency_cost_s"])
    assert log[-1].data["total_latency_cost_s"] == sum(d.data["latency_cost_s"] for d in kept)


def test_sensitivity_on_workers_ranks_as_one_process_does():
    from npuc.compiler.parallel import Fanout
    from npuc.compiler.quantize.api import _calibrated_builder
    from npuc.compiler.quantize.prepare import prepare
    from npuc.compiler.quantize.recovery import Evaluator, sensitivity
    from npuc.compiler.quantize.requirement import parse_requirement
    from npuc.compiler.quantize.scheme import scheme_for

    builder = _calibrated_builder(prepare(_deep(layers=4)), scheme_for("warboy-2pe", "int8"),
                                  _cal(8), "minmax", False,
                                  {"bias_correction": True, "keep_float": set()}, 0.5)
    from npuc.compiler.quantize.plan import Plan

    ev = Evaluator(builder.float_graph, _cal(8), parse_requirement("sqnr>=60"))
    layers = [f"fc{i}" for i in range(4)]
    one = sensitivity(builder, ev, layers, Plan())
    two = sensitivity(builder, ev, layers, Plan(), Fanout(workers=2))
    assert one == two


def test_a_layer_measured_on_its_downstream_part_scores_as_a_full_run():
    """Each layer's candidate cut to what its change reaches, fed the cached float
    values, gives the score of the whole candidate run from the inputs."""
    from npuc.compiler.quantize.api import _calibrated_builder
    from npuc.compiler.quantize.plan import Plan
    from npuc.compiler.quantize.prepare import prepare
    from npuc.compiler.quantize.recovery import Evaluator
    from npuc.compiler.quantize.requirement import parse_requirement
    from npuc.compiler.quantize.scheme import scheme_for
    from npuc.compiler.quantize.sensitivity import _candidate, cut, float_keys, measure_part

    builder = _calibrated_builder(prepare(_deep(layers=4)), scheme_for("warboy-2pe", "int8"),
                                  _cal(8), "minmax", False,
                                  {"bias_correction": True, "keep_float": set()}, 0.5)
    ev = Evaluator(builder.float_graph, _cal(8), parse_requirement("sqnr>=60"))
    layers = [f"fc{i}" for i in range(4)]
    full = [ev.score(ev.measure(_candidate(builder, Plan(), layers, n))) for n in layers]
    assert measure_part((builder, ev, Plan(), layers), layers) == full
    assert len(set(full)) > 1
    last = _candidate(builder, Plan(), layers, "fc3")
    before = len(last)
    fed = cut(last, float_keys(builder.float_graph))
    assert set(fed.values()) == {"t2"} and len(last) < before / 2  # fc3 and its Tanh only


def test_the_search_on_workers_chooses_and_logs_as_one_process_does(monkeypatch):
    from npuc.compiler import parallel
    from npuc.compiler.parallel import Fanout
    from npuc.ir.printer import print_graph

    measured = []  # the fanned-out measures' work items

    def spy(fn, items, *a, **k):
        if k.get("desc") == "accuracy":
            measured.append(len(items))
        return fan_out(fn, items, *a, **k)

    fan_out = parallel.fan_out
    monkeypatch.setattr(parallel, "fan_out", spy)

    def run(fanout):  # 40 samples: two runs of stacked rows, one per worker
        return quantize(_deep(layers=4), "warboy-2pe", _cal(40), precision="int8",
                        accuracy="sqnr>=60", progress=False, fanout=fanout)

    one, two = run(None), run(Fanout(workers=2))
    assert [d for d in log_of(one) if d.stage == "accuracy"]  # the search ran
    assert measured and all(n == 2 for n in measured)
    assert log_of(one).dumps() == log_of(two).dumps()
    assert print_graph(one) == print_graph(two)


def test_a_candidate_keeps_its_decisions_to_itself():
    from npuc.compiler.quantize.api import _calibrated_builder
    from npuc.compiler.quantize.plan import Plan
    from npuc.compiler.quantize.prepare import prepare
    from npuc.compiler.quantize.scheme import scheme_for

    builder = _calibrated_builder(prepare(_deep(layers=4)), scheme_for("warboy-2pe", "int8"),
                                  _cal(8), "minmax", False,
                                  {"bias_correction": True, "keep_float": set()}, 0.5)
    before = len(log_of(builder.float_graph))
    moved = builder.build(Plan(layers={"fc1": "fp32"}))
    plain = builder.build(Plan())
    assert len(log_of(builder.float_graph)) == before
    assert any(d.subject == "fc1" and d.action == "fp32" for d in log_of(moved))
    assert not any(d.subject == "fc1" and d.action == "fp32" for d in log_of(plain))


def _outliers(width=64, seed=0):
    """x -> MatMul -> Tanh -> MatMul, fed rows with one rare large value per sample: the
    MinMax range wastes int8's levels on it; a clipping observer does better."""
    rng = np.random.default_rng(seed)
    w = [rng.normal(0, 1 / np.sqrt(width), (width, width)).astype(np.float32)
         for _ in range(2)]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m0"], name="fc0"),
             helper.make_node("Tanh", ["m0"], ["t0"], name="act0"),
             helper.make_node("MatMul", ["t0", "w1"], ["y"], name="fc1")]
    g = helper.make_graph(
        nodes, "outliers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])],
        [numpy_helper.from_array(a, f"w{i}") for i, a in enumerate(w)])
    model = npuc.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    samples = []
    for _ in range(8):
        x = rng.normal(size=(128, width)).astype(np.float32)
        x.flat[rng.integers(x.size)] = 40.0
        samples.append({"x": x})
    return model, samples


def test_observers_chosen_on_workers_are_those_of_one_process():
    """The observer step reads the histogram methods from one pass (fanned out) and sends
    the ranges it chose with each measure: the same choices and graph as one process."""
    from npuc.compiler.parallel import Fanout
    from npuc.ir.printer import print_graph

    def run(fanout):
        model, samples = _outliers()
        return quantize(model, "warboy-2pe", samples, precision="int8",
                        accuracy="sqnr>=45", progress=False, fanout=fanout)

    one, two = run(None), run(Fanout(workers=2))
    chosen = [d for d in log_of(one) if d.stage == "accuracy" and d.action == "observer"]
    assert chosen and chosen[0].data["kept"], [d.reason for d in log_of(one)]
    assert chosen[0].data["sqnr_db"] > [d for d in log_of(one)
                                        if d.action == "baseline"][0].data["sqnr_db"]
    assert log_of(one).dumps() == log_of(two).dumps()
    assert print_graph(one) == print_graph(two)


def test_the_search_judges_decided_positions_with_headroom():
    """A flip where the float model leads by between half verify's margin and the margin:
    not a changed answer to verify, one to the recovery's judge."""
    from npuc.compiler.accuracy import MARGIN, agreement
    from npuc.compiler.quantize.evaluator import SEARCH_MARGIN, Evaluator
    from npuc.compiler.quantize.requirement import parse_requirement

    ref = np.zeros((1, 8, 3), np.float32)
    ref[0, :, 0] = 1.0  # the output's scale: 1
    ref[0, 3] = [0.0, 0.5, 0.5 - (SEARCH_MARGIN + MARGIN) / 2]
    got = ref.copy()
    got[0, 3, 2] = 0.6  # position 3 now picks class 2
    t = helper.make_tensor_value_info
    g = npuc.import_onnx(helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "id",
        [t("x", TensorProto.FLOAT, [1, 8, 3])], [t("y", TensorProto.FLOAT, [1, 8, 3])]),
        opset_imports=[helper.make_opsetid("", 17)]))
    ev = Evaluator(g, [{"x": ref}], parse_requirement("argmax<=1%"))
    assert agreement({"y": ref}, {"y": got}, "argmax").changed_share == 0.0
    assert ev.judge([{"y": got}]).changed_share == 1.0
    assert ev.judge([{"y": ref}]).changed_share == 0.0


def test_only_float32_on_a_chip_without_it_runs_on_the_host():
    from npuc.compiler.quantize.recovery import Costs, ladder
    from npuc.compiler.quantize.scheme import scheme_for

    for target in ("warboy-2pe", "rngd", "atom"):
        scheme = scheme_for(target, "int8")
        costs = Costs(scheme)
        assert [r for r in ladder(scheme) if costs.on_host(r)] == ["fp32"]
