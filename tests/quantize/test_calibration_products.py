"""Calibration runs the float model with float32 products, the same bits on any thread
count: the observed ranges are those of ``execute(..., products="float32")``."""

import numpy as np

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize.calibrate import calibrate, observed_values


def _state(stats):
    return {k: (o.lo, o.hi) for k, o in sorted(stats.observers.items())}


def test_calibration_observes_float32_products_on_any_thread_count(monkeypatch):
    from npuc import zoo

    graph = npuc.load_model(zoo.build("bert-tiny"))
    batches = [zoo.sample_inputs("bert-tiny", batch=2, seed=s) for s in range(2)]
    runs = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        runs.append(_state(calibrate(graph, batches, progress=False)))
    assert runs[0] == runs[1] == runs[2]

    probe = graph.copy()
    by_name = {v.name: v for v in probe.values()}
    probe.outputs.extend(by_name[v.name] for v in observed_values(graph)
                         if by_name[v.name] not in probe.outputs)
    fast = [execute(probe, b, products="float32") for b in batches]
    exact = [execute(probe, b) for b in batches]
    seen = [k for k in runs[0] if k in fast[0]]
    assert len(seen) > 10
    want = {k: (min(float(f[k].min()) for f in fast), max(float(f[k].max()) for f in fast))
            for k in seen}
    assert {k: runs[0][k] for k in seen} == want
    assert any(not np.array_equal(f[k], e[k]) for f, e in zip(fast, exact) for k in seen)
