"""Run random models from NNSmith through npuc and onnxruntime and compare with torch.

    python benchmarks/fuzz_nnsmith.py --count 200 --seed 0 [--max-nodes 5] [--regenerate]

NNSmith (https://github.com/ise-uiuc/nnsmith, ``pip install nnsmith``) builds random valid
models with an SMT solver, realizes them as torch modules, searches inputs that keep them
free of NaN and infinity, exports them to ONNX and records torch's outputs as the
reference. This script generates ``--count`` models from seeds ``--seed ... --seed+count-1``
into ``benchmarks/fuzz_models/`` (``<seed>.onnx`` plus ``<seed>.npz`` holding
``input:NAME`` and ``output:NAME`` arrays; models already there are reused, so pass
``--regenerate`` after changing ``--max-nodes``), then runs
every model with npuc and with onnxruntime and counts, per runtime:

- match: every output equal to torch's (rtol 1e-3, atol 1e-4, NaN equal to NaN),
- mismatch: it ran but an output differs (value, shape or dtype),
- refused: a clear one-line error (``NpucError`` for npuc; for onnxruntime an error
  raised while loading the model, i.e. it rejected it),
- crash: any other exception, or no answer within ``--timeout`` seconds.

It prints the table, then every failure of each runtime with its one-line message, the
operators and input types of the model, and what the other runtime did.
Generation needs torch and nnsmith; ``--no-generate`` runs only the models on disk.

Generation is seeded but not fully reproducible (NNSmith bounds its solver and its search for
weights and inputs in time; 13 of 20 regenerated models came out byte-identical): the files
on disk are the record.

NNSmith 0.1 calls ``torch.onnx.export`` with the TorchScript exporter in mind (opset 14);
torch 2.9 and later default to the torch.export-based exporter, which cannot trace
NNSmith's modules, so generation asks for ``dynamo=False``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import sys
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "fuzz_models")
RTOL, ATOL = 1e-3, 1e-4
DTYPE_ONLY = " (the values match)"
OUTCOMES = ("match", "mismatch", "refused", "crash")


# --- generation ---------------------------------------------------------------------------


def _patch_torch_export() -> None:
    import torch

    export = torch.onnx.export
    if getattr(export, "_fuzz_nnsmith", False):
        return

    def legacy_export(*args, **kwargs):
        kwargs.setdefault("dynamo", False)
        return export(*args, **kwargs)

    legacy_export._fuzz_nnsmith = True
    torch.onnx.export = legacy_export


def make_opset(out_dir: str):
    """NNSmith's operators with the dtypes its ONNX exporter handles (cached in out_dir)."""
    import nnsmith.narrow_spec as narrow_spec
    from nnsmith.materialize import Model

    model_type = Model.init("onnx")
    model_type.add_seed_setter()
    narrow_spec.NNSMITH_CACHE_DIR = os.path.join(out_dir, ".nnsmith_cache")
    return model_type, narrow_spec.auto_opset(model_type, None)


def generate_one(model_type, opset, seed: int, max_nodes: int, out_dir: str) -> str:
    """Generate the model of one seed; returns the path of its .onnx file."""
    import onnx
    from nnsmith.graph_gen import model_gen
    from nnsmith.util import set_seed

    set_seed(seed)
    gen = model_gen(opset=opset, method="symbolic-cinit", seed=seed, max_nodes=max_nodes,
                    timeout_ms=10000)
    ir = gen.make_concrete()
    model = model_type.from_gir(ir)
    model.refine_weights()  # searches inputs that keep every value finite
    oracle = model.make_oracle()  # torch eager on CPU
    proto = model.native_model
    onnx.checker.check_model(proto, full_check=True)
    path = os.path.join(out_dir, f"{seed}.onnx")
    onnx.save(proto, path)
    arrays = {f"input:{k}": np.asarray(v) for k, v in oracle.input.items()}
    arrays.update({f"output:{k}": np.asarray(v) for k, v in oracle.output.items()})
    np.savez(os.path.join(out_dir, f"{seed}.npz"), **arrays)
    return path


def generate(seeds, max_nodes: int, out_dir: str, regenerate: bool) -> dict[int, str]:
    """Generate the missing models; returns {seed: reason} for seeds NNSmith gave up on."""
    todo = [s for s in seeds
            if regenerate or not os.path.exists(os.path.join(out_dir, f"{s}.npz"))]
    failed: dict[int, str] = {}
    if not todo:
        return failed
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("dtest", "mgen", "smt", "core", "gen|torch", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _patch_torch_export()
    model_type, opset = make_opset(out_dir)
    t0 = time.perf_counter()
    for i, seed in enumerate(todo):
        try:
            generate_one(model_type, opset, seed, max_nodes, out_dir)
        except Exception as e:  # noqa: BLE001 - the generator's own failures are reported
            failed[seed] = f"{type(e).__name__}: {_one_line(e)}"
            with open(os.path.join(out_dir, f"{seed}.genfail"), "w") as f:
                f.write(traceback.format_exc())
        if (i + 1) % 20 == 0:
            print(f"  generated {i + 1}/{len(todo)} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)
    return failed


# --- running ------------------------------------------------------------------------------


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("no answer within the time limit")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def load_case(path_npz: str):
    data = np.load(path_npz, allow_pickle=False)
    inputs = {k[6:]: data[k] for k in data.files if k.startswith("input:")}
    outputs = {k[7:]: data[k] for k in data.files if k.startswith("output:")}
    return inputs, outputs


def compare(got: dict, expected: dict) -> str | None:
    """None when every output matches, else why not (one line)."""
    for name, want in expected.items():
        if name not in got:
            return f"output {name} missing"
        have = np.asarray(got[name])
        if have.shape != want.shape:
            return f"output {name}: shape {have.shape}, expected {want.shape}"
        if have.dtype != want.dtype:
            why = f"output {name}: dtype {have.dtype}, expected {want.dtype}"
            return why + (DTYPE_ONLY if compare({name: have.astype(want.dtype)},
                                                {name: want}) is None else "")
        if want.dtype == np.bool_ or not np.issubdtype(want.dtype, np.number):
            bad = have != want
        else:
            w, h = want.astype(np.float64), have.astype(np.float64)
            close = np.isclose(h, w, rtol=RTOL, atol=ATOL, equal_nan=True)
            bad = ~close
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            return (f"output {name}: {int(np.sum(bad))} of {want.size} values differ, "
                    f"e.g. at {idx} got {have[idx]!r}, expected {want[idx]!r}")
    return None


def run_npuc(model_path: str, inputs: dict) -> dict:
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.load import load_model

    return execute(load_model(model_path), inputs)


def run_ort(model_path: str, inputs: dict) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise _Refused(_one_line(e)) from e
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs)))


class _Refused(Exception):
    pass


def classify(runner, model_path: str, inputs: dict, expected: dict, timeout: float):
    """(outcome, one-line message) of one runtime on one model."""
    from npuc.ir.errors import NpucError

    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        got = runner(model_path, {k: v.copy() for k, v in inputs.items()})
    except (NpucError, _Refused) as e:
        return "refused", f"{type(e).__name__}: {_one_line(e)}"
    except Timeout as e:
        return "crash", f"Timeout: {e}"
    except Exception as e:  # noqa: BLE001 - a crash is what is being counted
        tb = traceback.extract_tb(e.__traceback__)
        where = f" [{os.path.basename(tb[-1].filename)}:{tb[-1].lineno}]" if tb else ""
        return "crash", f"{type(e).__name__}: {_one_line(e)}{where}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    why = compare(got, expected)
    return ("match", "") if why is None else ("mismatch", why)


def declared_dtypes(model_path: str) -> dict:
    """The dtype each output of the model declares."""
    import onnx

    m = onnx.load(model_path, load_external_data=False)
    return {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            for v in m.graph.output}


def reference_note(model_path: str, expected: dict) -> str:
    """Why torch's reference cannot be matched by any runtime, if the model itself says so."""
    declared = declared_dtypes(model_path)
    wrong = [f"{k} is {declared[k].name} in the model, {v.dtype.name} in torch"
             for k, v in expected.items() if k in declared and declared[k] != v.dtype]
    return ("reference disagrees with the exported model: " + "; ".join(wrong)) if wrong else ""


def describe(model_path: str) -> str:
    """The operators of a model and the dtypes/shapes of its inputs, for the failure list."""
    import onnx

    m = onnx.load(model_path)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    ins = []
    for v in m.graph.input:
        t = v.type.tensor_type
        dims = "x".join(str(d.dim_value) for d in t.shape.dim) or "scalar"
        ins.append(f"{onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name}[{dims}]")
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), "?")
    return (f"opset {opset}; ops " + ", ".join(f"{k}x{v}" if v > 1 else k for k, v in ops.items())
            + "; inputs " + ", ".join(ins))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--max-nodes", type=int, default=5, help="NNSmith's max_nodes (default 5)")
    p.add_argument("--out", default=DEFAULT_OUT, help="model folder (default %(default)s)")
    p.add_argument("--regenerate", action="store_true", help="regenerate models on disk")
    p.add_argument("--no-generate", action="store_true", help="only run models on disk")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per model and runtime")
    p.add_argument("--json", help="write every result to this file")
    args = p.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.count))
    gen_failed: dict[int, str] = {}
    if not args.no_generate:
        gen_failed = generate(seeds, args.max_nodes, args.out, args.regenerate)

    runtimes = {"npuc": run_npuc, "onnxruntime": run_ort}
    counts = {r: collections.Counter() for r in runtimes}
    results = []
    for seed in seeds:
        model_path = os.path.join(args.out, f"{seed}.onnx")
        npz = os.path.join(args.out, f"{seed}.npz")
        if seed in gen_failed or not os.path.exists(npz):
            continue
        inputs, expected = load_case(npz)
        row = {"seed": seed, "model": describe(model_path),
               "note": reference_note(model_path, expected)}
        for name, runner in runtimes.items():
            outcome, msg = classify(runner, model_path, inputs, expected, args.timeout)
            counts[name][outcome] += 1
            row[name] = {"outcome": outcome, "message": msg}
        results.append(row)

    n = len(results)
    print(f"\nNNSmith models: {n} run (seeds {args.seed}..{args.seed + args.count - 1}, "
          f"max_nodes {args.max_nodes}; {len(gen_failed)} seeds NNSmith could not generate)")
    print(f"reference: torch eager outputs; match = rtol {RTOL:g}, atol {ATOL:g}, NaN equal\n")
    print(f"{'runtime':<12}" + "".join(f"{o:>10}" for o in OUTCOMES))
    for name in runtimes:
        print(f"{name:<12}" + "".join(f"{counts[name][o]:>10}" for o in OUTCOMES))

    for name in runtimes:
        only = sum(r[name]["message"].endswith(DTYPE_ONLY) for r in results)
        if only:
            print(f"  {name}: {only} of the mismatches are in the output dtype only, where the"
                  " exported model declares another dtype than torch returns")
    for name in runtimes:
        bad = [r for r in results if r[name]["outcome"] != "match"]
        print(f"\n{name} failures ({len(bad)}):")
        for r in bad:
            other = "onnxruntime" if name == "npuc" else "npuc"
            note = f"; {r['note']}" if r["note"] else ""
            print(f"  {r['seed']}: {r[name]['outcome']}: {r[name]['message']}\n"
                  f"      {r['model']}\n"
                  f"      ({other}: {r[other]['outcome']}{note})")
    if gen_failed:
        print(f"\nseeds NNSmith could not generate ({len(gen_failed)}):")
        for seed, why in gen_failed.items():
            print(f"  {seed}: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "generation_failures": gen_failed}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
