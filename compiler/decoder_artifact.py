"""A decoder's prefill and decode programs in one artifact, sharing one weight blob and
one device-resident KV cache.

A decoder is served by two kinds of program: prefill takes the prompt (``s`` tokens, no
past) and fills the cache; decode takes one token, attends over the cache and writes its
keys and values at the next position. :func:`compile_decoder` compiles both from one
model with its cache as device state of ``max_seq`` positions (see
:mod:`npuc.compiler.schedule.kvcache`): one prefill program per shape set (``--shape
sequence=128,512``) and one decode program per batch size (``--decode-batch 1,8,32``),
written as a bucketed folder
(:mod:`npuc.compiler.lower.buckets`) whose manifest says each program's role and the
cache they share. The cache has a row per sequence of the largest decode batch; a decode
program at a smaller batch reads and writes its leading rows, and a prefill program (at
``batch``, 1 by default) writes the rows its ``cache_row`` input names when the cache has
more rows than it serves (:mod:`npuc.compiler.serving.runtime` keeps the rows of the
sequences in flight and picks the decode program).

The two forms come from

- a zoo decoder (``zoo:llama-tiny``): built with its cache (``use_cache``) in prefill
  form and in decode form with ``past = max_seq - 1``, the same weights;
- two ONNX files, as exporters write them (the prefill model, and ``decode_model`` with
  past inputs of ``max_seq - 1`` positions).
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import dataclass, field

from npuc.compiler.bucketed import BucketsResult
from npuc.ir.errors import NpucError


@dataclass
class DecoderResult(BucketsResult):
    """A bucketed compile's result whose programs also have roles: the prefill ones
    first, then the decode ones by batch, the largest last."""

    roles: list = field(default_factory=list)

    def index(self, role: str) -> int:
        """The first program of ``role`` ("prefill" or "decode")."""
        return self.roles.index(role)

    @property
    def decode_batches(self) -> list[int]:
        """The batch of each decode program, in order."""
        return [p["state"]["batch"] for p, role in zip(self.programs, self.roles)
                if role == "decode"]

    @property
    def summary(self) -> dict:
        return self.results[-1].summary


def decoder_forms(model, max_seq: int, decode_model=None, sets=None) -> tuple:
    """``([(prefill model, its shape set), ...], decode model)`` for ``model``: one prefill
    per shape set (for a zoo decoder, per ``sequence=N``)."""
    from npuc.compiler.schedule.shapes import ShapeSet

    sets = sets or [ShapeSet()]
    zoo_name = isinstance(model, str) and model.startswith("zoo:")
    if decode_model is not None and zoo_name:
        raise NpucError(f"{model}: a zoo decoder builds its own decode form; leave out "
                        f"--decode-model {decode_model}")
    if decode_model is not None:
        return [(model, s) for s in sets], decode_model
    if zoo_name:
        from npuc.compiler import zoo

        name = model[4:]
        lengths = []
        for s in sets:
            given = s.as_dict()
            if set(given) - {"sequence"} or any(len(v) != 1 for v in given.values()):
                raise NpucError(f"--shape {s.label()}: a zoo decoder's prefill takes "
                                "--shape sequence=N[,M...] (its prompt lengths)")
            lengths.append({"sequence": given["sequence"][0]} if given else {})
        try:
            prefills = [zoo.build(name, batch=None, use_cache=True, **n) for n in lengths]
            decode = zoo.build(name, batch=None, sequence=1, past=max_seq - 1, use_cache=True)
        except (TypeError, ValueError, NpucError) as e:
            raise NpucError(f"{model}: not a decoder with a KV cache ({e})") from None
        for p in prefills:
            p.graph.name = f"{name}-prefill"
        decode.graph.name = f"{name}-decode"
        return [(p, ShapeSet()) for p in prefills], decode
    if isinstance(model, (str, os.PathLike)):  # a missing or broken file says so first
        from npuc.compiler.frontend.onnx_import import _read

        _read(os.fspath(model))
    raise NpucError(f"{model}: give the decode form of the model too (--decode-model "
                    "FILE, its past inputs holding max_seq - 1 positions)")


def decode_batches(decode_batch, batch: int = 1) -> list[int]:
    """The decode batch sizes asked for (``"1,8,32"``, a list, or None for ``batch``),
    sorted and distinct; the prefill's ``batch`` must not exceed the largest."""
    if decode_batch is None:
        return [batch]
    items = decode_batch.split(",") if isinstance(decode_batch, str) else \
        [decode_batch] if isinstance(decode_batch, int) else list(decode_batch)
    try:
        sizes = sorted({int(str(b).strip()) for b in items})
    except ValueError:
        raise NpucError(f"--decode-batch {decode_batch}: give batch sizes as integers, "
                        "e.g. 1,8,32,64") from None
    if not sizes or sizes[0] < 1:
        raise NpucError(f"--decode-batch {decode_batch}: every batch size must be at "
                        "least 1")
    if batch > sizes[-1]:
        raise NpucError(f"--batch {batch} (the prefill's) is larger than the largest "
                        f"--decode-batch {sizes[-1]}: the KV cache has a row per sequence "
                        "of the largest decode batch")
    return sizes


def compile_decoder(model, target, max_seq: int, decode_model=None, shapes=None,
                    last_logits: bool = False, output_dir=None, decode_batch=None,
                    **options) -> DecoderResult:
    """Prefill programs (one per shape set, at ``batch``) and a decode program per batch
    of ``decode_batch`` (``[batch]`` when None), one artifact: one weight blob, one KV
    cache of the largest decode batch's rows."""
    from npuc.compiler.quantize.floatq import reused_weights
    from npuc.ir.safeio import check_output_dir

    if max_seq is None or max_seq < 2:
        raise NpucError("--max-seq must be at least 2 (a prompt token and a decoded one)")
    if output_dir is not None:
        check_output_dir(output_dir)
    with reused_weights():  # every program rounds the same weights: once
        return _compile_decoder(model, target, max_seq, decode_model, shapes, last_logits,
                                output_dir, decode_batch, options)


def _compile_decoder(model, target, max_seq, decode_model, shapes, last_logits, output_dir,
                     decode_batch, options) -> DecoderResult:
    from npuc.compiler.decoder_calibration import check_room
    from npuc.compiler.driver import compile
    from npuc.compiler.schedule.shapes import parse_shapes
    from npuc.ir.safeio import write_dir

    batches = decode_batches(decode_batch, options.get("batch", 1))
    rows = batches[-1]
    sets = parse_shapes(shapes)
    prefills, decode = decoder_forms(model, max_seq, decode_model, sets)
    given = options.pop("calibration", None)
    samples = [_calibration(p, decode, target, max_seq, given, options) for p, _ in prefills]
    decode_samples = samples[0][1]

    def decode_at(b, scales=None):
        r = _light(compile(decode, target, max_seq=max_seq, cache_rows=rows,
                           cache_scales=scales, calibration=_at_batch(decode_samples, b, given),
                           **dict(options, batch=b)), options)
        _check_batch(r, b)
        return r

    # the first decode program chooses each cache's fp8 scale (from its calibration); the
    # others store and read the cache with it
    first = decode_at(batches[0])
    scales = {t["name"]: t["scale"] for t in first.program["state"]["tensors"]
              if "scale" in t} or None
    results = [_light(compile(prefill, target, shapes=s, max_seq=max_seq,
                              last_logits=last_logits, calibration=samples[i][0],
                              cache_rows=rows, cache_scales=scales, **options), options)
               for i, (prefill, s) in enumerate(prefills)]
    for r in results:
        ids = r.program["inputs"].get("input_ids", {}).get("shape", [])
        if len(ids) > 1 and isinstance(ids[1], int):
            check_room(ids[1], max_seq)
    results += [first] + [decode_at(b, scales) for b in batches[1:]]
    roles = ["prefill"] * len(sets) + ["decode"] * len(batches)
    labels = [f"prefill {_length(r)}" for r in results[:len(sets)]] + \
        [f"decode batch={b} max_seq={max_seq}" for b in batches]
    _check_state(results, labels)
    out = _artifact(results, labels, roles, options)
    if output_dir is not None:
        write_dir(output_dir, out.files)
        out.output_dir = output_dir
    return out


def _artifact(results, labels, roles, options) -> DecoderResult:
    """The programs on one shared blob, the manifest (each program's role and batch, the
    cache) and the artifact's files."""
    from npuc.compiler.lower.buckets import manifest, merge_weights
    from npuc.compiler.pipeline import json_text

    programs, blob = merge_weights([r.program for r in results], [r.weights for r in results])
    if not options.get("keep_reference", True):  # the shared blob holds them all
        for r in results:
            r.weights = r.files["weights.bin"] = b""
    info = manifest(results[0].target.name, labels, programs, blob)
    for entry, role, p in zip(info["programs"], roles, programs):
        entry["role"] = role
        entry["batch"] = p["state"]["batch"]
        if role == "decode" and entry["estimated_latency_s"] is not None:
            entry["estimated_s_per_token"] = entry["estimated_latency_s"] / entry["batch"]
    state = programs[-1]["state"]
    info["kv_cache"] = {k: v for k, v in state.items() if k not in ("tensors", "batch")}
    info["kv_cache"]["tensors"] = [
        {"name": t["name"], "offset": t["offset"], "dtype": t["dtype"],
         "shape": [state["rows"]] + list(t["shape"][1:]),
         **({"scale": t["scale"]} if "scale" in t else {})} for t in state["tensors"]]
    files = {"manifest.json": json_text(info), "weights.bin": blob}
    for i, (r, p) in enumerate(zip(results, programs)):
        files[f"program-{i}.json"] = json_text(p)
        for kind in ("schedule", "summary", "decisions"):
            files[f"{kind}-{i}.json"] = r.files[f"{kind}.json"]
        files[f"report-{i}.html"] = r.files["report.html"]
    return DecoderResult(labels, results, programs, blob, info, files=files, roles=roles)


def _at_batch(samples, batch: int, given):
    """Calibration samples of the decode program at ``batch``: the served steps' rows,
    taken in turn (no new reference runs); what the user gave, as given."""
    if samples is None or samples is given:
        return samples
    from npuc.compiler.decoder_calibration import at_batch

    return at_batch(samples, batch)


def _check_batch(result, batch: int) -> None:
    """The decode program runs ``batch`` sequences (a decode model with a fixed batch
    cannot be compiled at others)."""
    got = result.program["state"]["batch"]
    if got != batch:
        raise NpucError(f"--decode-batch {batch}: the decode model's batch is fixed at "
                        f"{got}; export it with a dynamic batch axis")


def _calibration(prefill, decode, target, max_seq: int, given, options: dict) -> tuple:
    """The programs' calibration inputs when the precision needs calibration: served
    prompts and the decode steps after them
    (:mod:`npuc.compiler.decoder_calibration`), the prompts the user's when given
    (``--calibration prompts.txt``, token ids or an ``.npz`` of ``input_ids``); what was
    given as it is for ``random:N`` or no calibration."""
    from npuc.compiler.decoder_calibration import served_samples
    from npuc.compiler.pipeline import requested_precision, target_of

    chip = target_of(target)
    precision = requested_precision(chip, options.get("quantize", "auto"))
    if precision == "none" or not chip.quant.needs_calibration(precision) or (
            given is not None and str(given).startswith("random:")):
        return given, given
    if given is None:
        options.setdefault("accuracy", None)  # generated prompts say nothing of the answer
    return served_samples(prefill, decode, max_seq, options.get("batch", 1), prompts=given)


def _light(result, options: dict):
    """``result`` without its graph and schedule when the reference is not kept (a
    compile that only writes the artifact): they hold every weight (float32, rounded,
    quantized), and the next program compiles meanwhile."""
    if not options.get("keep_reference", True):
        result.graph = result.schedule = None  # the schedule's groups hold the graph's nodes
        # the graph's nodes and values refer to each other: collected now, before the
        # next program's weights are made, not at some later collection
        gc.collect()
    return result


def _length(result) -> str:
    """``sequence=N``: the prompt length of a prefill program."""
    ids = result.program["inputs"].get("input_ids")
    return f"sequence={ids['shape'][1]}" if ids and len(ids["shape"]) > 1 else ""


def _check_state(results, labels) -> None:
    """Every program finds every cache at the same place, with the same rows, shape
    (past the batch, which is the program's) and format."""
    def layout(r):
        state = r.program.get("state")
        if state is None:
            return None
        return json.dumps([state["rows"]] + [(t["name"], t["offset"], t["shape"][1:],
                                               t["dtype"], t.get("scale"))
                                              for t in state["tensors"]])

    want = layout(results[-1])
    for r, label in zip(results, labels):
        got = layout(r)
        if got != want:
            raise NpucError(f"the {label} program's KV cache differs from the decode "
                            f"program's: its caches (names, shapes) must be the same; "
                            f"got {got}, decode has {want}")
