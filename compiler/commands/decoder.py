"""The decoder options of ``npuc compile`` and ``npuc verify``: a KV cache of ``--max-seq``
positions as device state, prefill and decode programs in one artifact, and
``--decode-steps`` greedy steps verified token by token."""

from __future__ import annotations


def add_decoder_options(p, verify: bool = False) -> None:
    """``--max-seq``, ``--decode-batch``, ``--decode-model``, ``--last-logits`` (and
    ``--decode-steps`` for verify)."""
    p.add_argument("--max-seq", type=int, metavar="N",
                   help="a decoder: compile its prefill and decode programs into one "
                        "artifact, its KV cache device state of N positions")
    p.add_argument("--decode-batch", metavar="B[,B...]",
                   help="with --max-seq: a decode program per batch size (e.g. 1,8,32,64), "
                        "one KV cache of the largest batch's rows (default: --batch)")
    p.add_argument("--decode-model", metavar="ONNX",
                   help="with --max-seq: the decode form of MODEL (past inputs of N - 1 "
                        "positions); a zoo decoder builds its own")
    if verify:
        p.add_argument("--decode-steps", type=int, metavar="K",
                       help="with --max-seq: run a prompt through the prefill program, then K "
                            "greedy decode steps with the cache, compared token by token "
                            "with onnxruntime")
    p.add_argument("--last-logits", action="store_true",
                   help="with --max-seq: prefill returns the last token's logits only")


def check_decoder_args(args) -> None:
    """One-line errors for decoder options given without what they need."""
    from npuc.ir.errors import NpucError

    if args.max_seq is None:
        for flag, given in (("--decode-model", args.decode_model),
                            ("--decode-batch", args.decode_batch),
                            ("--decode-steps", getattr(args, "decode_steps", None)),
                            ("--last-logits", getattr(args, "last_logits", False))):
            if given:
                raise NpucError(f"{flag} needs --max-seq (the KV cache's length)")
    if getattr(args, "chips", 1) > 1 and args.max_seq is not None:
        raise NpucError("--max-seq works on one chip; not with --chips")
    if args.max_seq is not None and args.schedule_in:
        raise NpucError("--schedule-in pins one program; --max-seq makes several")


def _options(args) -> dict:
    return dict(opt_level=args.opt_level, quantize=args.quantize, calibration=args.calibration,
                batch=args.batch, shapes=args.shape, decode_batch=args.decode_batch)


def run_compile(args) -> int:
    """``npuc compile MODEL --max-seq N``."""
    from npuc.compiler.decoder_artifact import compile_decoder

    r = compile_decoder(args.model, args.target, args.max_seq, args.decode_model,
                        last_logits=args.last_logits, output_dir=args.output,
                        keep_reference=False, **_options(args))
    kv = r.manifest["kv_cache"]
    print(f"compiled {args.model} for {r.manifest['target']}: {len(r.programs)} programs, "
          f"one weight blob of {len(r.weights)} bytes, KV cache of {kv['max_seq']} positions "
          f"({kv['bytes']} bytes, device state)")
    print(f"  KV cache: {kv['rows']} row(s) (the largest decode batch) x {kv['max_seq']} "
          f"positions")
    for label, res, role in zip(r.labels, r.results, r.roles):
        s = res.summary
        per = ""
        if role == "decode":
            per = f" ({s['estimated_latency_s'] / s['batch'] * 1e3:.4f} ms per token)"
        print(f"  {label}: estimated {s['estimated_latency_s'] * 1e3:.4f} ms{per}, "
              f"{s['nodes_on_npu']} nodes on the NPU, {s['nodes_on_cpu']} on the CPU, "
              f"DRAM traffic {s['dram_traffic_bytes']} bytes")
    print(f"wrote {args.output}")
    return 0


def run_verify(args) -> int:
    """``npuc verify MODEL --max-seq N --decode-steps K``."""
    import json

    from npuc.compiler.decode_verify import verify_decoder
    from npuc.ir.errors import NpucError

    if args.decode_steps is None:
        raise NpucError("--max-seq in verify needs --decode-steps K (how many tokens to "
                        "decode)")
    options = _options(args)
    batch = options.pop("batch")
    r = verify_decoder(args.model, args.target, args.decode_steps, args.max_seq,
                       args.decode_model, batch=batch, output_dir=args.output,
                       last_logits=args.last_logits, **options)
    if args.json:
        print(json.dumps(r.to_json(), indent=1, sort_keys=True))
        return 0 if r.passed else 1
    for note in r.notes:
        print(f"note: {note}")
    tol = r.tolerance
    print(f"reference: onnxruntime; precision {r.precision}; logits SQNR >= "
          f"{tol['sqnr_db_min']} dB and cosine >= {tol['cosine_min']} per step")
    for s in r.steps:
        what = "prefill" if s["kind"] == "prefill" else f"decode {s['step']}"
        where = f"rows {s['rows'][0]}-{s['rows'][-1]}" if len(s["rows"]) > 1 else \
            f"row {s['rows'][0]}"
        print(f"  {what} (batch {s['batch']}, {where}, position {s['position']}): token "
              f"{_ids(s['program_token'])} vs "
              f"{_ids(s['reference_token'])} ({s['agreement']}), SQNR {s['sqnr_db']:.2f} dB, "
              f"cosine {s['cosine']:.6f}, program vs IR "
              f"{'identical' if s['program_vs_ir_identical'] else 'DIFFERS'} -> "
              f"{'ok' if s['passed'] else 'FAIL'}")
    agree = sum(s["token_agrees"] for s in r.steps)
    print(f"tokens: {agree}/{len(r.steps)} agree, {r.near_ties} near-ties")
    print("verify: passed" if r.passed else "verify: FAILED")
    return 0 if r.passed else 1


def _ids(tokens: list) -> str:
    return ",".join(str(t) for t in tokens)
