"""``npuc estimate MODEL --target T``: latency, throughput, capacity and energy."""

from __future__ import annotations

import re

QUANTIZE = ("auto", "int8", "fp8", "bf16", "fp16", "int4")
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(s|ms|us)?\s*$")


def parse_workload(text: str | None):
    """``in=128,out=4096`` -> Workload."""
    from npuc.compiler.serving.decoder import Workload
    from npuc.ir.errors import NpucError

    if text is None:
        return None
    values = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in ("in", "out") or not value.strip().isdigit():
            raise NpucError(f"--workload {text}: expected in=N,out=M (token counts)")
        values[key.strip()] = int(value)
    if set(values) != {"in", "out"} or min(values.values()) < 1:
        raise NpucError(f"--workload {text}: give both in=N and out=M, each at least 1")
    return Workload(values["in"], values["out"])


def parse_batches(text: str | None) -> list[int] | None:
    """``1,2,4,8`` -> [1, 2, 4, 8]."""
    from npuc.ir.errors import NpucError

    if text is None:
        return None
    try:
        batches = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise NpucError(f"--batch {text}: expected batch sizes like 1,2,4,8") from None
    if not batches or min(batches) < 1:
        raise NpucError(f"--batch {text}: batch sizes must be at least 1")
    return batches


def parse_seconds(text: str | None) -> float | None:
    """``50ms``, ``0.2s``, ``800us``; a bare number is milliseconds."""
    from npuc.ir.errors import NpucError

    if text is None:
        return None
    m = _TIME.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise NpucError(f"--latency-target {text}: expected a positive time like 50ms")
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, None: 1e-3}[m.group(2)]
    return float(m.group(1)) * scale


def add_serving_options(p) -> None:
    """The options estimate and compare share."""
    p.add_argument("model", metavar="MODEL", help="an .onnx file, an .npuir file or zoo:NAME")
    p.add_argument("--chips", type=int, default=1, metavar="N",
                   help="chips (cards) of the target serving the model together (default 1)")
    p.add_argument("--workload", metavar="in=N,out=M",
                   help="decoders: prompt and generated tokens per request (default "
                        "in=128,out=128)")
    p.add_argument("--batch", metavar="B[,B...]",
                   help="other models: batch sizes to sweep (default 1,2,4,8); decoders: "
                        "the most sequences in flight")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE,
                   help="precision of the weights (default: the chip's preferred)")
    p.add_argument("--tp", type=int, metavar="N", help="decoders: pin tensor parallelism")
    p.add_argument("--pp", type=int, metavar="N", help="decoders: pin pipeline parallelism")
    p.add_argument("--qps", type=float, metavar="R",
                   help="a load in requests per second: how many cards serve it")
    p.add_argument("--latency-target", metavar="T",
                   help="latency to meet (per batch; per output token for decoders), e.g. "
                        "50ms")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the JSON here")


def options(args) -> dict:
    """Keyword arguments of :func:`npuc.compiler.serving.estimate.estimate`."""
    from npuc.ir.errors import NpucError

    batches = parse_batches(args.batch)
    if args.qps is not None and args.qps <= 0:
        raise NpucError("--qps must be positive")
    return {"chips": args.chips, "workload": parse_workload(args.workload),
            "batches": batches, "quantize": args.quantize, "tp": args.tp, "pp": args.pp,
            "qps": args.qps, "latency_target": parse_seconds(args.latency_target),
            "max_sequences": batches[0] if batches and len(batches) == 1 else None}


def write_json(path: str, data) -> None:
    """Write ``data`` as JSON to ``path`` (sorted keys), through npuc's safe writer."""
    import json

    from npuc.ir.safeio import write_file

    write_file(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def add_parser(sub):
    p = sub.add_parser("estimate", help="latency, throughput, capacity and energy on a chip",
                       description="Estimate how MODEL serves on a chip, or several: for "
                                   "decoders tokens/s, time to first token, time per output "
                                   "token and sequences in flight under continuous batching; "
                                   "for other models latency per batch size and offline "
                                   "throughput; with --qps the cards a load needs; energy "
                                   "from the board's power.")
    p.add_argument("--target", "-t", required=True, metavar="T",
                   help="a chip name (npuc targets lists them) or a chip .toml file")
    add_serving_options(p)
    return p


def run(args) -> int:
    import json

    from npuc.compiler.serving.estimate import estimate
    from npuc.compiler.serving.table import render

    result = estimate(args.model, args.target, **options(args))
    if args.output:
        write_json(args.output, result)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print(f"{result['model']} on {result['chips']} x {result['target']}")
        print(render([result]))
        if args.output:
            print(f"wrote {args.output}")
    return 0
