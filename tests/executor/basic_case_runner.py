"""Run the ONNX conformance node cases of the basic operators through npuc's kernels.

The ONNX package carries one test case per example in its operator specification: a
one-node model, its inputs and the outputs its reference implementation computed. This
module writes those cases to a directory (the layout of ``generate-data``: ``node/<case>/
model.onnx`` and ``test_data_set_0/input_*.pb``, sequences as ``SequenceProto`` and
optionals as ``OptionalProto``), reads them back, runs the node's kernel directly and
compares the results::

    python -m tests.executor.basic_case_runner            # every basic operator
    python -m tests.executor.basic_case_runner Cast Pad   # only these
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

from npuc.compiler.executor.kernels import KERNELS, KernelContext
from tests.executor.case_tools import equal, model_opset, node_attrs


def load_basic_kernels() -> set[tuple[str, str]]:
    """Import the basic kernel modules; the (domain, op) pairs they define."""
    from npuc.compiler.executor.kernels import BASIC_MODULES

    before = {k: v for k, v in KERNELS.items()}
    for m in BASIC_MODULES:
        importlib.import_module(m)
    mods = set(BASIC_MODULES)
    return {k for k, fn in KERNELS.items() if fn.__module__ in mods or k not in before}


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute)


def _write_value(value, vtype: onnx.TypeProto, name: str) -> bytes:
    if vtype.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if vtype.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, onnx.TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), name).SerializeToString()


def _read_value(path: str, vtype: onnx.TypeProto):
    with open(path, "rb") as f:
        data = f.read()
    if vtype.HasField("sequence_type"):
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if vtype.HasField("optional_type"):
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def write_cases(root: str, ops: set[str] | None = None) -> list[str]:
    """Write the single-node cases whose op is in ``ops`` under ``root/node``; their dirs."""
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
            for kind, values, decls in (("input", ins, graph.input), ("output", outs, graph.output)):
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




def run_case(case_dir: str) -> str | None:
    """Run one case; None when it passes, else a one-line reason."""
    model, sets = load_case(case_dir)
    node = model.graph.node[0]
    domain = "" if node.domain == "ai.onnx" else node.domain
    fn = KERNELS.get((domain, node.op_type))
    if fn is None:
        return "no kernel"
    attrs = node_attrs(node)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
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
        if len(got) != len(outs):
            return f"{len(got)} outputs, expected {len(outs)}"
        for k, (g, w) in enumerate(zip(got, outs)):
            msg = equal(g, w, f"output {k}")
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


def basic_ops() -> set[str]:
    """The default-domain operators the basic kernel modules define."""
    return {op for dom, op in load_basic_kernels() if dom == ""}


if __name__ == "__main__":
    ops = set(sys.argv[1:]) or basic_ops()
    load_basic_kernels()
    with tempfile.TemporaryDirectory() as tmp:
        write_cases(tmp, ops)
        passed, failed = run_dir(tmp)
    for name, msg in sorted(failed.items()):
        print(f"FAIL {name}: {msg}")
    print(f"{len(passed)} passed, {len(failed)} failed")
