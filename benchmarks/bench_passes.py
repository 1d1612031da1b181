"""Import + optimize (-O2) against onnxsim, and the pass pipeline's growth with size.

    python benchmarks/bench_passes.py                 # the five big zoo models + synthetic
    python benchmarks/bench_passes.py --models resnet50 --sizes 1000,10000
    python benchmarks/bench_passes.py --models benchmarks/models/resnet50-torchscript.onnx

For each zoo model, written to an .onnx file first: the time to import and optimize it
(-O2), the time onnxsim takes to simplify the same file, measured in the same run, both
node counts, and the largest relative error of the -O2 graph against onnxruntime on the
original model. Then synthetic chains of 1k, 10k, 50k nodes: -O2 time per node, which
stays flat when the pipeline is linear. onnxsim is needed for the first part only
(``pip install onnxsim``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

MODELS = ["resnet50", "mobilenetv2", "bert-base", "gpt2", "vit-base"]


def best_of(fn, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_model(name: str, folder: str, repeat: int) -> dict:
    import onnx
    import onnxruntime as ort

    import npuc
    from npuc.compiler.frontend.onnx_export import export_onnx
    from npuc.compiler.frontend.onnx_import import import_onnx

    if name.endswith(".onnx"):  # an exported model (benchmarks/export_models.py)
        path = name
        stem = os.path.basename(name)[:-5]
        for exporter in ("-torchscript", "-dynamo"):
            stem = stem.removesuffix(exporter)
        npz = os.path.join(os.path.dirname(name), f"{stem}.inputs.npz")
        inputs = dict(np.load(npz)) if os.path.exists(npz) else None
    else:
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(npuc.zoo.build(name), path)
        inputs = npuc.zoo.sample_inputs(name)
    ours_s, graph = best_of(lambda: npuc.optimize(import_onnx(path), level=2, copy=False),
                            repeat)
    if inputs is None:
        from npuc.compiler.executor.inputs import random_inputs

        inputs = random_inputs(import_onnx(path))
    row = {"model": os.path.basename(name), "nodes": len(import_onnx(path)), "ours_s": ours_s,
           "ours_nodes": len(graph)}
    try:
        import onnxsim
    except ImportError:
        row["sim_s"] = row["sim_nodes"] = None
    else:
        sim_s, (sim, _ok) = best_of(lambda: onnxsim.simplify(path), repeat)
        row["sim_s"], row["sim_nodes"] = sim_s, len(sim.graph.node)
    want = ort.InferenceSession(path).run(None, inputs)
    got = ort.InferenceSession(export_onnx(graph).SerializeToString()).run(None, inputs)
    row["rel_err"] = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) or 1.0))
                         for a, b in zip(want, got))
    return row


def synthetic(n_nodes: int):
    """A chain of Conv, BatchNorm, Relu blocks with Transpose pairs and Identity between."""
    from npuc.ir.graph import Graph
    from npuc.ir.types import tensor

    rng = np.random.default_rng(0)
    g = Graph("synthetic")
    g.opset = {"": 17}
    t = tensor("f32", [1, 4, 8, 8])
    x = g.add_input("x", t)
    tt = tensor("f32", [1, 8, 8, 4])
    while len(g) < n_nodes:  # each layer has its own weights, as in a real model
        w = g.add_constant("w", rng.standard_normal((4, 4, 1, 1)).astype(np.float32))
        bn = [g.add_constant("bn", (rng.random(4) + 0.5).astype(np.float32)) for _ in range(4)]
        x = g.create_node("Conv", [x, w], [("c", t)]).outputs[0]
        x = g.create_node("BatchNormalization", [x, *bn], [("b", t)]).outputs[0]
        x = g.create_node("Relu", [x], [("r", t)]).outputs[0]
        x = g.create_node("Transpose", [x], [("t", tt)], {"perm": [0, 2, 3, 1]}).outputs[0]
        x = g.create_node("Identity", [x], [("i", tt)]).outputs[0]
        x = g.create_node("Transpose", [x], [("u", t)], {"perm": [0, 3, 1, 2]}).outputs[0]
    g.outputs = [x]
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import npuc

    npuc.optimize(npuc.load_model("zoo:resnet-tiny"), level=2)  # warm up lazy imports
    models = [m for m in args.models.split(",") if m]
    if models:
        print(f"{'model':<28}{'nodes':>7}{'-O2':>6}{'onnxsim':>9}{'ours s':>9}{'sim s':>9}"
              f"{'ratio':>7}{'rel err':>10}")
        with tempfile.TemporaryDirectory() as folder:
            for name in models:
                r = bench_model(name, folder, args.repeat)
                sim_s = r["sim_s"]
                ratio = f"{r['ours_s'] / sim_s:.2f}" if sim_s else "-"
                print(f"{r['model']:<28}{r['nodes']:>7}{r['ours_nodes']:>6}"
                      f"{r['sim_nodes'] if r['sim_nodes'] is not None else '-':>9}"
                      f"{r['ours_s']:>9.3f}{sim_s if sim_s is not None else float('nan'):>9.3f}"
                      f"{ratio:>7}{r['rel_err']:>10.1e}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        print(f"\n{'nodes':>8}{'after':>8}{'-O2 s':>9}{'us/node':>9}")
        for n in sizes:
            g = synthetic(n)
            size = len(g)
            seconds, out = best_of(lambda: npuc.optimize(g, level=2), 1)
            print(f"{size:>8}{len(out):>8}{seconds:>9.3f}{1e6 * seconds / size:>9.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
