"""Export the acceptance-check models from PyTorch to ONNX with both torch.onnx exporters.

    python benchmarks/export_models.py [--only NAME] [--exporter torchscript|dynamo]
                                       [--out DIR]

Writes, under ``benchmarks/models/`` (or ``--out``):

- ``<name>-torchscript.onnx``: ``torch.onnx.export(..., dynamo=False, opset_version=17)``
- ``<name>-dynamo.onnx``: ``torch.onnx.export(..., dynamo=True)`` at its default opset; its
  weights may be in ``<name>-dynamo.onnx.data`` next to it (keep the two together)
- ``<name>.inputs.npz``: the sample inputs (batch 2; the batch axis is dynamic)
- ``<name>.torch_outputs.npz``: what PyTorch computes on them

The models are those of ``torch_models.py``. When an exporter fails on a model, the reason
is printed on one line and the next export goes on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch_models

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OUT = os.path.join(HERE, "models")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


def file_bytes(path: str) -> int:
    """Size of a model with its external data file, if any."""
    total = os.path.getsize(path)
    if os.path.exists(path + ".data"):
        total += os.path.getsize(path + ".data")
    return total


def describe(path: str) -> tuple[int, int, list[str]]:
    """(node count, default-domain opset, sorted op types) of an ONNX file."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)
    ops = sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                  for n in model.graph.node})
    return len(model.graph.node), opset, ops


def _remove(path: str) -> None:
    for p in (path, path + ".data"):
        if os.path.exists(p):
            os.remove(p)


def export(spec, exporter: str, path: str) -> None:
    import torch

    args = spec.torch_args()
    input_names = list(spec.inputs)
    _remove(path)  # a stale .data file must not survive a re-export
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                spec.model, args, path, dynamo=False, opset_version=17,
                input_names=input_names, output_names=spec.output_names,
                dynamic_axes={n: {0: "batch"} for n in input_names + spec.output_names})
        else:
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(
                spec.model, args, path, dynamo=True,
                input_names=input_names, output_names=spec.output_names,
                dynamic_shapes=tuple({0: batch} for _ in input_names),
                verbose=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=torch_models.NAMES, action="append",
                    help="export this model only (may be repeated)")
    ap.add_argument("--exporter", choices=EXPORTERS, action="append",
                    help="use this exporter only (may be repeated)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    a = ap.parse_args(argv)
    names = a.only or torch_models.NAMES
    exporters = a.exporter or list(EXPORTERS)
    os.makedirs(a.out, exist_ok=True)

    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    failed = 0
    print(f"torch {torch.__version__}; writing to {a.out}")
    print(f"{'model':<13} {'exporter':<12} {'nodes':>6} {'opset':>5} {'size MB':>8} "
          f"{'time s':>7}  note")
    for name in names:
        t0 = time.perf_counter()
        try:
            spec = torch_models.build(name)
            with torch.no_grad():
                ref = spec.model(*spec.torch_args())
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{name:<13} {'-':<12} {'':>6} {'':>5} {'':>8} {'':>7}  "
                  f"build failed: {one_line(e)}", flush=True)
            failed += 1
            continue
        ref = ref if isinstance(ref, tuple) else (ref,)
        np.savez(os.path.join(a.out, f"{name}.inputs.npz"), **spec.inputs)
        np.savez(os.path.join(a.out, f"{name}.torch_outputs.npz"),
                 **{n: r.numpy() for n, r in zip(spec.output_names, ref)})
        build_s = time.perf_counter() - t0
        for exporter in exporters:
            path = os.path.join(a.out, f"{name}-{exporter}.onnx")
            t0 = time.perf_counter()
            try:
                export(spec, exporter, path)
                secs = time.perf_counter() - t0
                nodes, opset, ops = describe(path)
            except Exception as e:  # noqa: BLE001 - report and go on
                secs = time.perf_counter() - t0
                print(f"{name:<13} {exporter:<12} {'':>6} {'':>5} {'':>8} {secs:7.1f}  "
                      f"FAILED {one_line(e)}", flush=True)
                _remove(path)
                failed += 1
                continue
            ext = " +.data" if os.path.exists(path + ".data") else ""
            print(f"{name:<13} {exporter:<12} {nodes:>6} {opset:>5} "
                  f"{file_bytes(path) / 1e6:8.1f} {secs:7.1f}  "
                  f"build {build_s:.1f}s{ext}; ops: {' '.join(ops)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
