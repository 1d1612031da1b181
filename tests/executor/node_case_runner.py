"""Run ONNX conformance node cases through npuc's kernels.

The ONNX package ships a test case for each operator example in its specification: a
one-node model, its inputs and the outputs the reference implementation computed. This
module collects those cases (or reads them back from a directory written in the layout
of ``onnx.backend.test.cmd_tools generate-data``), runs the node's kernel directly and
compares the result::

    python -m tests.executor.node_case_runner Conv MaxPool   # or no names: every case
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
from onnx import numpy_helper

from npuc.compiler.executor.kernels import KERNELS, KernelContext
from tests.executor.case_tools import model_opset, node_attrs

# Operators whose outputs are random: only shape, dtype and value range are compared.
RANDOM_OPS = {"Bernoulli", "RandomNormal", "RandomUniform", "RandomNormalLike",
              "RandomUniformLike", "Multinomial"}


@dataclass
class NodeCase:
    """One conformance case: a single-node model and its (inputs, outputs) data sets."""

    name: str
    model: onnx.ModelProto
    data_sets: list

    @property
    def node(self) -> onnx.NodeProto:
        return self.model.graph.node[0]


def _to_array(value) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def collect_cases(op_types=None) -> list[NodeCase]:
    """The single-node conformance cases of ``op_types`` (all when None), in memory."""
    import warnings

    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    out = []
    for c in cases:
        if len(c.model.graph.node) != 1:
            continue
        if op_types is not None and c.model.graph.node[0].op_type not in op_types:
            continue
        sets = [([_to_array(x) for x in ins], [_to_array(y) for y in outs])
                for ins, outs in c.data_sets]
        out.append(NodeCase(c.name, c.model, sets))
    return out


def write_cases(cases: list[NodeCase], root: str) -> None:
    """Write cases as ``root/node/<name>/model.onnx`` and ``test_data_set_0/*.pb``."""
    for case in cases:
        d = os.path.join(root, "node", case.name)
        os.makedirs(d, exist_ok=True)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        for i, (ins, outs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            for kind, arrays in (("input", ins), ("output", outs)):
                for j, a in enumerate(arrays):
                    with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(numpy_helper.from_array(a).SerializeToString())


def load_case(case_dir: str) -> NodeCase:
    """Read one case directory written by :func:`write_cases` or ``generate-data``."""
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    sets = []
    for ds in sorted(x for x in os.listdir(case_dir) if x.startswith("test_data_set")):
        arrays = {}
        for kind in ("input", "output"):
            files = sorted((f for f in os.listdir(os.path.join(case_dir, ds))
                            if f.startswith(kind + "_")),
                           key=lambda f: int(f[len(kind) + 1:-3]))
            arrays[kind] = []
            for f in files:
                t = onnx.TensorProto()
                with open(os.path.join(case_dir, ds, f), "rb") as fh:
                    t.ParseFromString(fh.read())
                arrays[kind].append(numpy_helper.to_array(t))
        sets.append((arrays["input"], arrays["output"]))
    return NodeCase(os.path.basename(case_dir), model, sets)


def load_cases(root: str, op_types=None) -> list[NodeCase]:
    node_dir = os.path.join(root, "node")
    cases = [load_case(os.path.join(node_dir, n)) for n in sorted(os.listdir(node_dir))]
    return [c for c in cases if op_types is None or c.node.op_type in op_types]




def _compare(got, want, name, random_op) -> str | None:
    got = np.asarray(got)
    if got.dtype != want.dtype:
        return f"{name}: dtype {got.dtype} != {want.dtype}"
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != {want.shape}"
    if random_op:
        return None
    rtol, atol = 1e-3, 1e-4
    if want.dtype.kind == "V":  # ml_dtypes (float8, int4, bfloat16): compare as float64
        if "float" in str(want.dtype):  # one unit in the last place of a narrow float
            rtol = atol = float(ml_dtypes.finfo(want.dtype).eps)
        got, want = got.astype(np.float64), want.astype(np.float64)
    if want.dtype.kind in "fc":
        g = got.astype(np.complex128 if want.dtype.kind == "c" else np.float64)
        w = want.astype(g.dtype)
        if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            err = np.nanmax(np.abs(g - w)) if g.size else 0
            return f"{name}: max abs error {err:.3g}"
    elif not np.array_equal(got, want):
        return f"{name}: values differ ({int((got != want).sum())} of {want.size})"
    return None


def _is_random(node, inputs) -> bool:
    """Whether the expected outputs were drawn at random (only shapes can be compared)."""
    if node.op_type in RANDOM_OPS:
        return True
    # Dropout in training mode draws its mask from numpy's global generator.
    return (node.op_type == "Dropout" and len(inputs) > 2 and inputs[2] is not None
            and bool(inputs[2]) and float(inputs[1]) > 0)


def run_case(case: NodeCase) -> str | None:
    """Run a case; None when it passes, else a one-line reason."""
    node = case.node
    fn = KERNELS.get((node.domain if node.domain != "ai.onnx" else "", node.op_type))
    if fn is None:
        return "no kernel"
    ctx = KernelContext(opset=model_opset(case.model, node.domain), num_outputs=len(node.output),
                        rng=np.random.default_rng(0))
    attrs = node_attrs(node)
    for ins, outs in case.data_sets:
        by_name = dict(zip([i.name for i in case.model.graph.input], ins))
        inputs = [by_name[n] if n else None for n in node.input]
        try:
            got = fn(inputs, attrs, ctx)
        except Exception as e:  # noqa: BLE001 - reported as the case's failure
            return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        # Outputs the node leaves unnamed ("") are not among the expected ones.
        named = [i for i, n in enumerate(node.output) if n]
        if len(got) <= named[-1]:
            return f"{len(got)} outputs, expected {len(node.output)}"
        got = [got[i] for i in named]
        for k, (g, w) in enumerate(zip(got, outs)):
            msg = _compare(g, w, f"output {k}", _is_random(node, inputs))
            if msg:
                return msg
    return None


def run_cases(cases):
    """(passed names, {failed name: reason})."""
    passed, failed = [], {}
    for c in cases:
        msg = run_case(c)
        if msg is None:
            passed.append(c.name)
        else:
            failed[c.name] = msg
    return passed, failed


def load_nn_kernels() -> None:
    import importlib

    from npuc.compiler.executor.kernels import NN_MODULES

    for m in NN_MODULES:
        importlib.import_module(m)


if __name__ == "__main__":
    load_nn_kernels()
    ops = set(sys.argv[1:]) or None
    passed, failed = run_cases(collect_cases(ops))
    for name, msg in sorted(failed.items()):
        print(f"FAIL {name}: {msg}")
    print(f"{len(passed)} passed, {len(failed)} failed")
