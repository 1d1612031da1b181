"""The ONNX conformance node cases, run through npuc's kernels one node at a time.

The ONNX package carries one test case per example in its operator specification: a
one-node model, its inputs and the outputs its reference implementation computed. This
module writes those cases to a directory (the layout of ``generate-data``: ``node/<case>/
model.onnx`` and ``test_data_set_0/input_*.pb``, sequences as ``SequenceProto`` and
optionals as ``OptionalProto``), reads them back, runs the node's kernel directly and
compares the results. ``tests/conformance`` runs the same cases end to end (import,
execute) and shares :func:`equal` and :func:`value`::

    python -m tests.executor.onnx_cases            # every operator with a kernel
    python -m tests.executor.onnx_cases Cast Pad   # only these
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import ml_dtypes
import numpy as np
import onnx
from onnx import numpy_helper

from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all
from npuc.ir.onnx_io import attr_from_proto

# Operators whose outputs are random: only shape and dtype are compared.
RANDOM_OPS = {"Bernoulli", "RandomNormal", "RandomUniform", "RandomNormalLike",
              "RandomUniformLike", "Multinomial"}
RTOL, ATOL = 1e-3, 1e-4


def ops_in_modules(*modules: str) -> set[str]:
    """The default-domain operators whose kernels the named kernel modules define."""
    load_all()
    names = {f"npuc.compiler.executor.kernels.{m}" for m in modules}
    return {op for (domain, op), fn in KERNELS.items() if domain == "" and fn.__module__ in names}


def node_attrs(node: onnx.NodeProto) -> dict:
    """The node's attributes as kernels receive them: the importer's own conversion."""
    return {a.name: attr_from_proto(a, {}, None, {}) for a in node.attribute}


def model_opset(model: onnx.ModelProto, domain: str = "") -> int:
    """The opset the model imports for ``domain`` (1 when it imports none)."""
    for imp in model.opset_import:
        if imp.domain == domain or (domain == "" and imp.domain == "ai.onnx"):
            return imp.version
    return 1


def value(v):
    """Case data as arrays: some cases keep tensors as TensorProto (float8, int4, ...)."""
    from npuc.ir.onnx_types import array_from_proto

    if isinstance(v, onnx.TensorProto):
        return array_from_proto(v)
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


def equal(got, want, where: str, random: bool = False) -> str | None:
    """None when ``got`` matches ``want`` (rtol 1e-3, atol 1e-4, one unit in the last
    place of a narrow float, NaNs equal, dtypes and shapes exact; sequences and optionals
    element by element; only dtype and shape when ``random``), else what differs."""
    if want is None or got is None:
        return None if want is None and got is None else f"{where}: optional presence differs"
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: sequence length differs"
        for i, (g, w) in enumerate(zip(got, want)):
            msg = equal(g, w, f"{where}[{i}]", random)
            if msg:
                return msg
        return None
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype and not (got.dtype.kind in "OU" and want.dtype.kind in "OU"):
        return f"{where}: dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"{where}: shape {list(got.shape)}, expected {list(want.shape)}"
    if random:
        return None
    if want.dtype.kind in "OUS":
        return None if got.tolist() == want.tolist() else f"{where}: strings differ"
    rtol, atol = RTOL, ATOL
    if want.dtype.kind == "V" and "float" in str(want.dtype):  # float8, bfloat16, ...
        rtol = atol = max(RTOL, float(ml_dtypes.finfo(want.dtype).eps))
    g, w = got.astype(np.float64), want.astype(np.float64)
    if want.dtype.kind == "c":
        g, w = got.astype(np.complex128), want.astype(np.complex128)
    close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        err = np.abs(g - w)[~close]
        return f"{where}: {int((~close).sum())} of {close.size} values differ (max {err.max():.3g})"
    return None


# -- writing and reading the cases ---------------------------------------------------------
def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute)


def _write_value(v, vtype: onnx.TypeProto, name: str) -> bytes:
    if vtype.HasField("sequence_type"):
        return numpy_helper.from_list(v, name).SerializeToString()
    if vtype.HasField("optional_type"):
        return numpy_helper.from_optional(v, name).SerializeToString()
    if isinstance(v, onnx.TensorProto):
        return v.SerializeToString()
    return numpy_helper.from_array(np.asarray(v), name).SerializeToString()


def _read_value(path: str, vtype: onnx.TypeProto):
    with open(path, "rb") as f:
        data = f.read()
    for field, proto_type, convert in (("sequence_type", onnx.SequenceProto, numpy_helper.to_list),
                                       ("optional_type", onnx.OptionalProto,
                                        numpy_helper.to_optional)):
        if vtype.HasField(field):
            proto = proto_type()
            proto.ParseFromString(data)
            return convert(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def write_cases(root: str, ops: set[str] | None = None) -> list[str]:
    """Write the single-node cases whose op is in ``ops`` (all when None) under
    ``root/node``; their directories."""
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    dirs = []
    for case in cases:
        graph = case.model.graph
        if len(graph.node) != 1 or _has_subgraph(graph.node[0]):
            continue
        if ops is not None and graph.node[0].op_type not in ops:
            continue
        d = os.path.join(root, "node", case.name)
        os.makedirs(d, exist_ok=True)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        for i, (ins, outs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            for kind, values, decls in (("input", ins, graph.input),
                                        ("output", outs, graph.output)):
                for j, (v, decl) in enumerate(zip(values, decls)):
                    with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(_write_value(v, decl.type, decl.name))
        dirs.append(d)
    return dirs


def load_case(case_dir: str):
    """(model, [(inputs, outputs), ...]) of one case directory."""
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    graph = model.graph
    sets = []
    for ds in sorted(x for x in os.listdir(case_dir) if x.startswith("test_data_set")):
        p = os.path.join(case_dir, ds)
        ins = [_read_value(os.path.join(p, f"input_{j}.pb"), d.type)
               for j, d in enumerate(graph.input)]
        outs = [_read_value(os.path.join(p, f"output_{j}.pb"), d.type)
                for j, d in enumerate(graph.output)]
        sets.append((ins, outs))
    return model, sets


# -- running them ------------------------------------------------------------------------------
def _is_random(node, inputs) -> bool:
    """Whether the expected outputs were drawn at random (only shapes can be compared)."""
    if node.op_type in RANDOM_OPS:
        return True
    # Dropout in training mode draws its mask from numpy's global generator.
    return (node.op_type == "Dropout" and len(inputs) > 2 and inputs[2] is not None
            and bool(inputs[2]) and float(inputs[1]) > 0)


def run_case(case_dir: str) -> str | None:
    """Run one case; None when it passes, else a one-line reason."""
    load_all()
    model, sets = load_case(case_dir)
    node = model.graph.node[0]
    domain = "" if node.domain == "ai.onnx" else node.domain
    fn = KERNELS.get((domain, node.op_type))
    if fn is None:
        return "no kernel"
    attrs = node_attrs(node)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    named = [i for i, n in enumerate(node.output) if n]  # unnamed outputs are not expected
    for ins, outs in sets:
        values = dict(consts)
        values.update(zip([i.name for i in model.graph.input], ins))
        inputs = [values[n] if n else None for n in node.input]
        ctx = KernelContext(opset=model_opset(model, domain), num_outputs=len(node.output),
                            output_types=[], rng=np.random.default_rng(0))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = fn(inputs, attrs, ctx)
        except Exception as e:  # noqa: BLE001 - reported as the case's failure
            text = str(e).splitlines()[0] if str(e) else ""
            return f"{type(e).__name__}: {text}"
        if len(got) <= named[-1]:
            return f"{len(got)} outputs, expected {len(node.output)}"
        for k, (g, w) in enumerate(zip([got[i] for i in named], outs)):
            msg = equal(g, w, f"output {k}", _is_random(node, inputs))
            if msg:
                return msg
    return None


def run_dir(root: str) -> tuple[list[str], dict[str, str]]:
    """Run every case under ``root/node``: (passed names, {failed name: reason})."""
    passed, failed = [], {}
    node_dir = os.path.join(root, "node")
    for name in sorted(os.listdir(node_dir)):
        msg = run_case(os.path.join(node_dir, name))
        if msg is None:
            passed.append(name)
        else:
            failed[name] = msg
    return passed, failed


if __name__ == "__main__":
    load_all()
    with tempfile.TemporaryDirectory() as tmp:
        write_cases(tmp, set(sys.argv[1:]) or None)
        passed, failed = run_dir(tmp)
    for name, msg in sorted(failed.items()):
        print(f"FAIL {name}: {msg}")
    print(f"{len(passed)} passed, {len(failed)} failed")
