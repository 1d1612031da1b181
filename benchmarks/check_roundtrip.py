"""Round-trip check of the exported models: ONNX -> text IR -> ONNX, with onnxruntime.

    python benchmarks/check_roundtrip.py [--only NAME] [--exporter torchscript|dynamo]
                                         [--no-execute] [--timeout S] [--models DIR]

For every ``<models>/<name>-<exporter>.onnx`` written by ``export_models.py``:

1. ``npuc convert M.onnx -o rt/M.npuir``           (ONNX -> text IR, large constants in .bin)
2. ``npuc convert rt/M.npuir -o rt2/M.npuir``      (text -> text: the .npuir and its .bin
   must be byte-identical to those of step 1; same file name, so the side-file name in
   the header is the same too)
3. ``npuc convert rt/M.npuir -o rt/M.rt.onnx``     (text IR -> ONNX)
4. onnxruntime runs ``M.onnx`` and ``M.rt.onnx`` on ``<name>.inputs.npz``; per output the
   relative error is ``max|rt - orig| / max|orig|``; PASS when every output is within
   ``--tol`` (1e-5) and shapes and dtypes agree.
5. unless ``--no-execute``: npuc's reference executor runs the imported ``M.onnx`` on the
   same inputs (in a child process, under the timeout) and is compared with onnxruntime
   the same way.

The ``npuc`` command is run through subprocess, as a user runs it. When a step fails its
last line of error output is reported verbatim; the whole output goes to
``rt/M.<step>.log``. Results are also written to ``<models>/roundtrip_results.json``.
The exit status is 0 when every model passes steps 1-4.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODELS = os.path.join(HERE, "models")
EXPORTERS = ("torchscript", "dynamo")


# ---------------------------------------------------------------------------------------
# helpers

def rel_err(ref: np.ndarray, got: np.ndarray) -> float:
    """max|got - ref| / max|ref| (inf on a shape mismatch; exact test for non-floats)."""
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    if not np.issubdtype(ref.dtype, np.floating):
        return 0.0 if np.array_equal(ref, got) else float("inf")
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    if not np.array_equal(np.isnan(ref64), np.isnan(got64)):
        return float("inf")
    ok = ~np.isnan(ref64)
    diff = np.abs(got64[ok] - ref64[ok])
    if diff.size == 0:
        return 0.0
    scale = np.max(np.abs(ref64[ok]))
    return float(np.max(diff) / scale) if scale > 0 else float(np.max(diff))


def compare(ref: dict, got: dict) -> tuple[float, list[str]]:
    """The worst relative error over the outputs of ``ref`` and a line per output."""
    worst, lines = 0.0, []
    for name, r in ref.items():
        if name not in got:
            lines.append(f"{name}: missing (got {', '.join(got)})")
            worst = float("inf")
            continue
        g = got[name]
        e = rel_err(r, g)
        note = ""
        if np.asarray(r).dtype != np.asarray(g).dtype:
            note = f" dtype {np.asarray(r).dtype} vs {np.asarray(g).dtype}"
            e = float("inf")
        if np.asarray(r).shape != np.asarray(g).shape:
            note += f" shape {np.asarray(r).shape} vs {np.asarray(g).shape}"
        lines.append(f"{name}: rel err {e:.3g}{note}")
        worst = max(worst, e)
    return worst, lines


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def same_bytes(a: str, b: str) -> bool:
    if not os.path.exists(a) or not os.path.exists(b):
        return os.path.exists(a) == os.path.exists(b)
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def first_difference(a: str, b: str) -> str:
    """Where two text files first differ, as 'line N: ... | ...'."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for i, (x, y) in enumerate(zip(fa, fb), 1):
            if x != y:
                return f"line {i}: {x[:120]!r} vs {y[:120]!r}"
    return "one file is a prefix of the other"


class Step:
    def __init__(self):
        self.ok = False
        self.seconds = 0.0
        self.error = ""


def npuc(args: list[str], log: str, timeout: float) -> Step:
    """Run ``npuc ARGS``; keep its output in ``log``."""
    st = Step()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["npuc", *args], capture_output=True, text=True, timeout=timeout,
                           check=False)
        out = p.stdout + p.stderr
        st.ok = p.returncode == 0
        if not st.ok:
            st.error = last_line(p.stderr or p.stdout)
    except subprocess.TimeoutExpired as e:
        out = f"{e.stdout or ''}{e.stderr or ''}"
        out = out.decode() if isinstance(out, bytes) else out
        st.error = f"timed out after {timeout:.0f} s"
    st.seconds = time.perf_counter() - t0
    with open(log, "w") as f:
        f.write(f"$ npuc {' '.join(args)}\n{out}")
    return st


def ort_run(path: str, inputs: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise KeyError(f"inputs {missing} of {os.path.basename(path)} not in the sample inputs")
    outs = sess.run(None, {n: inputs[n] for n in names})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def run_executor(model: str, inputs_npz: str, out_npz: str, log: str, timeout: float):
    """npuc's executor on ``model`` in a child process: (outputs or None, seconds, error)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, os.path.abspath(__file__), "--execute-one", model, inputs_npz,
           out_npz]
    if os.path.exists(out_npz):
        os.remove(out_npz)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           check=False)
        out, ok = p.stdout + p.stderr, p.returncode == 0
        err = "" if ok else last_line(p.stderr or p.stdout)
    except subprocess.TimeoutExpired:
        out, ok, err = "", False, f"timed out after {timeout:.0f} s"
    secs = time.perf_counter() - t0
    with open(log, "w") as f:
        f.write(out)
    if not ok:
        return None, secs, err
    with np.load(out_npz) as z:
        return {k: z[k] for k in z.files}, secs, ""


def execute_one(model: str, inputs_npz: str, out_npz: str) -> int:
    """Child-process side of run_executor: import, execute, save the outputs."""
    import traceback

    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.load import load_model

    try:
        with np.load(inputs_npz) as z:
            inputs = {k: z[k] for k in z.files}
        t0 = time.perf_counter()
        graph = load_model(model)
        t1 = time.perf_counter()
        names = {v.name for v in graph.inputs}
        outs = execute(graph, {k: v for k, v in inputs.items() if k in names})
        t2 = time.perf_counter()
        np.savez(out_npz, **{k: np.asarray(v) for k, v in outs.items()})
        print(f"import {t1 - t0:.1f}s execute {t2 - t1:.1f}s")
        return 0
    except Exception as e:  # noqa: BLE001 - the one-line reason is the result
        traceback.print_exc()
        print(f"{type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------------------------------

def check(path: str, models: str, tol: float, execute: bool, timeout: float) -> dict:
    import onnx

    stem = os.path.basename(path)[:-len(".onnx")]
    name, exporter = stem.rsplit("-", 1)
    rt, rt2 = os.path.join(models, "rt"), os.path.join(models, "rt2")
    os.makedirs(rt, exist_ok=True)
    os.makedirs(rt2, exist_ok=True)
    ir1, ir2 = os.path.join(rt, stem + ".npuir"), os.path.join(rt2, stem + ".npuir")
    back = os.path.join(rt, stem + ".rt.onnx")
    for p in (ir1, ir1 + ".bin", ir2, ir2 + ".bin", back, back + ".data"):
        if os.path.exists(p):
            os.remove(p)
    proto = onnx.load(path, load_external_data=False)
    r = {"model": name, "exporter": exporter, "nodes": len(proto.graph.node),
         "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                       -1)}
    del proto
    print(f"\n== {stem} ({r['nodes']} nodes, opset {r['opset']})", flush=True)

    def report(step: str, st: Step):
        r[step] = {"ok": st.ok, "seconds": round(st.seconds, 2), "error": st.error}
        print(f"  {step:<13} {'ok' if st.ok else 'FAILED'} {st.seconds:7.1f}s"
              f"{'  ' + st.error if st.error else ''}", flush=True)

    s1 = npuc(["convert", path, "-o", ir1], os.path.join(rt, stem + ".import.log"), timeout)
    report("onnx->npuir", s1)
    if s1.ok:
        s2 = npuc(["convert", ir1, "-o", ir2], os.path.join(rt, stem + ".reprint.log"),
                  timeout)
        report("npuir->npuir", s2)
        if s2.ok:
            text_same = same_bytes(ir1, ir2)
            bin_same = same_bytes(ir1 + ".bin", ir2 + ".bin")
            r["text_identical"] = text_same
            r["bin_identical"] = bin_same
            sizes = (f"{os.path.getsize(ir1) / 1e6:.2f} MB text"
                     + (f", {os.path.getsize(ir1 + '.bin') / 1e6:.1f} MB .bin"
                        if os.path.exists(ir1 + ".bin") else ""))
            print(f"  byte-identical: text {'yes' if text_same else 'NO'}, "
                  f"side file {'yes' if bin_same else 'NO'} ({sizes})", flush=True)
            if not text_same:
                r["text_difference"] = first_difference(ir1, ir2)
                print(f"    first difference: {r['text_difference']}")
        s3 = npuc(["convert", ir1, "-o", back], os.path.join(rt, stem + ".export.log"),
                  timeout)
        report("npuir->onnx", s3)
    else:
        r["npuir->npuir"] = r["npuir->onnx"] = {"ok": False, "seconds": 0, "error": "skipped"}

    with np.load(os.path.join(models, f"{name}.inputs.npz")) as z:
        inputs = {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    try:
        ref = ort_run(path, inputs)
        r["ort_seconds"] = round(time.perf_counter() - t0, 2)
    except Exception as e:  # noqa: BLE001
        ref = None
        r["ort_error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        print(f"  onnxruntime on the original FAILED: {r['ort_error']}")
    torch_npz = os.path.join(models, f"{name}.torch_outputs.npz")
    if ref is not None and os.path.exists(torch_npz):
        with np.load(torch_npz) as z:
            e, _ = compare({k: z[k] for k in z.files}, ref)
        r["ort_vs_torch"] = e
        print(f"  onnxruntime(original) vs PyTorch: rel err {e:.3g}  (exporter fidelity)")

    r["pass"] = False
    if ref is not None and r.get("npuir->onnx", {}).get("ok"):
        t0 = time.perf_counter()
        try:
            got = ort_run(back, inputs)
            e, lines = compare(ref, got)
            r["rt_rel_err"] = e
            r["rt_outputs"] = lines
            r["pass"] = (e <= tol and r.get("text_identical", False)
                         and r.get("bin_identical", False))
            for ln in lines:
                print(f"    {ln}")
            print(f"  onnxruntime(round-tripped) vs onnxruntime(original): rel err {e:.3g} "
                  f"{'PASS' if e <= tol else 'FAIL'}  ({time.perf_counter() - t0:.1f}s)",
                  flush=True)
        except Exception as e:  # noqa: BLE001
            r["rt_error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            print(f"  onnxruntime on the round-tripped model FAILED: {r['rt_error']}",
                  flush=True)

    if execute and ref is not None:
        outs, secs, err = run_executor(path, os.path.join(models, f"{name}.inputs.npz"),
                                       os.path.join(rt, stem + ".execute.npz"),
                                       os.path.join(rt, stem + ".execute.log"), timeout)
        r["execute_seconds"] = round(secs, 1)
        if outs is None:
            r["execute_error"] = err
            print(f"  npuc execute  FAILED {secs:7.1f}s  {err}", flush=True)
        else:
            e, lines = compare(ref, outs)
            r["execute_rel_err"] = e
            print(f"  npuc execute  ok     {secs:7.1f}s  vs onnxruntime: rel err {e:.3g}"
                  f"  ({'; '.join(lines)})", flush=True)
    print(f"  => {'PASS' if r['pass'] else 'FAIL'}", flush=True)
    return r


def fmt_err(r: dict, key: str, err_key: str) -> str:
    if key in r:
        return f"{r[key]:.2g}"
    return "ERR" if err_key in r else "-"


def table(results: list[dict], tol: float) -> str:
    head = (f"{'model':<12} {'exporter':<11} {'nodes':>5} {'convert':<7} {'text==':<6} "
            f"{'ORT rel err':>11} {'result':<6} {'execute rel err':>15}")
    rows = [head, "-" * len(head)]
    for r in results:
        conv = "ok" if all(r.get(s, {}).get("ok") for s in
                           ("onnx->npuir", "npuir->npuir", "npuir->onnx")) else "FAIL"
        same = ("-" if "text_identical" not in r else
                "yes" if r["text_identical"] and r["bin_identical"] else "NO")
        rows.append(f"{r['model']:<12} {r['exporter']:<11} {r['nodes']:>5} {conv:<7} "
                    f"{same:<6} {fmt_err(r, 'rt_rel_err', 'rt_error'):>11} "
                    f"{'PASS' if r['pass'] else 'FAIL':<6} "
                    f"{fmt_err(r, 'execute_rel_err', 'execute_error'):>15}")
    errors = []
    for r in results:
        for step in ("onnx->npuir", "npuir->npuir", "npuir->onnx"):
            e = r.get(step, {}).get("error")
            if e and e != "skipped":
                errors.append(f"{r['model']}-{r['exporter']} {step}: {e}")
        for k in ("rt_error", "ort_error", "execute_error"):
            if k in r:
                errors.append(f"{r['model']}-{r['exporter']} {k[:-6]}: {r[k]}")
        if "text_difference" in r:
            errors.append(f"{r['model']}-{r['exporter']} text differs at "
                          f"{r['text_difference']}")
    out = "\n".join(rows) + f"\n(PASS: converts, text and side file byte-identical, " \
                            f"ORT rel err <= {tol:g})"
    if errors:
        out += "\n\nErrors:\n" + "\n".join("  " + e for e in errors)
    return out


def main(argv=None) -> int:
    if argv is None and len(sys.argv) == 5 and sys.argv[1] == "--execute-one":
        return execute_one(*sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="check this model only (repeatable)")
    ap.add_argument("--exporter", choices=EXPORTERS, action="append")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="folder of the exported models")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per step")
    ap.add_argument("--no-execute", action="store_true",
                    help="skip the comparison of npuc's executor with onnxruntime")
    a = ap.parse_args(argv)
    if shutil.which("npuc") is None:
        print("npuc is not on PATH; install the project first (pip install -e .)")
        return 2
    paths = []
    for p in sorted(glob.glob(os.path.join(a.models, "*-*.onnx"))):
        stem = os.path.basename(p)[:-len(".onnx")]
        name, exporter = stem.rsplit("-", 1)
        if exporter not in EXPORTERS:
            continue
        if a.only and name not in a.only:
            continue
        if a.exporter and exporter not in a.exporter:
            continue
        paths.append(p)
    if not paths:
        print(f"no exported models in {a.models}; run benchmarks/export_models.py first")
        return 2
    results = [check(p, a.models, a.tol, not a.no_execute, a.timeout) for p in paths]
    print("\n" + table(results, a.tol))
    out = os.path.join(a.models, "roundtrip_results.json")
    old = {}
    if os.path.exists(out):  # keep the results of models not checked this time
        try:
            with open(out) as f:
                old = {(r["model"], r["exporter"]): r for r in json.load(f)}
        except (OSError, ValueError, KeyError, TypeError):
            old = {}
    old.update({(r["model"], r["exporter"]): r for r in results})
    with open(out, "w") as f:
        json.dump(list(old.values()), f, indent=1, default=str)
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
