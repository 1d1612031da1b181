"""Calibration inputs for a decoder's programs, as a server feeds them.

Random inputs are far from what a decoder sees when it serves: a 0/1 coin per position
for ``attention_mask``, a normal sample for every cached key and value, positions at
random. At fp8 (and int8) the activation ranges come from calibration, so ranges taken
on such inputs are not those of a served step. :func:`served_samples` makes each
program's calibration inputs the way they arise: prompts (random token ids, seeded, the
whole prompt attended) for prefill, and for decode the step after each prompt, its past
the keys and values the float prefill model computed for it, its token the prefill's
greedy choice.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.decoder_onnx import present_name, prompt_feeds
from npuc.ir.errors import NpucError

SAMPLES = 8


def served_samples(prefill, decode, max_seq: int, batch: int = 1, count: int = SAMPLES,
                   seed: int = 0, prompts=None) -> tuple[list, list]:
    """``(prefill samples, decode samples)``, ``count`` of each (random prompts, seeded), or
    one of each per ``batch`` of ``prompts``: token ids of a prompt each (``[1, s]``), or
    a ``--calibration`` file or folder of them (``.txt``, one prompt per line; an ``.npz``
    of ``input_ids``), read for the prefill model (padded or cut to its length).

    The float prefill model runs on npuc's executor (float32 products), its weights
    mapped from their file and each node's pages given back after it, so that a model's
    float32 weights (6 GB for a 1B model exported in float32) are never all resident; the
    decode model is read for its input names only."""
    run, graph, s = _float_model(prefill)
    inputs = {v.name for v in graph.inputs}
    if s is None:
        raise NpucError("the prefill model's input_ids has no fixed length; give --shape")
    check_room(s, max_seq)
    vocab = _vocab(prefill)
    rng = np.random.default_rng(seed)
    prefill_samples, served = [], []
    if prompts is not None:
        if not isinstance(prompts, (list, tuple)):
            prompts = _user_prompts(graph, prompts)
        rows = [np.asarray(p, np.int64).reshape(-1, s) for p in prompts]
        rows = np.concatenate(rows) if rows else np.zeros((0, s), np.int64)
        groups = [rows[i:i + batch] for i in range(0, len(rows) - batch + 1, batch)]
        if not groups:
            raise NpucError(f"{len(rows)} calibration prompt(s) for a prefill of batch "
                            f"{batch}; give at least {batch}")
    else:
        groups = [rng.integers(0, vocab, (batch, s), dtype=np.int64) for _ in range(count)]
    for ids in groups:
        feeds = prompt_feeds(ids)
        out = run({k: v for k, v in feeds.items() if k in inputs})
        prefill_samples.append(feeds)
        out["logits"] = out["logits"][:, -1]  # the greedy choice reads the last position
        served.append(out)
    del run, graph
    wanted = _input_names(decode)
    decode_samples = []
    last = max_seq - 1
    for out in served:
        mask = np.zeros((batch, max_seq), np.int64)
        mask[:, :s] = 1
        mask[:, last] = 1
        step = {"input_ids": np.argmax(out["logits"], axis=-1)[:, None].astype(np.int64),
                "attention_mask": mask, "position_ids": np.full((batch, 1), s, np.int64)}
        for name in wanted:
            if name.startswith("past"):
                present = out[present_name(name)]
                past = np.zeros(present.shape[:2] + (last,) + present.shape[3:], present.dtype)
                past[:, :, :s] = present
                step[name] = past
        decode_samples.append({k: v for k, v in step.items() if k in wanted})
    return prefill_samples, decode_samples


def check_room(prompt: int, max_seq: int) -> None:
    """Refuse a cache with no position left to decode into after a ``prompt``-token
    prefill."""
    if prompt >= max_seq:
        raise NpucError(f"--max-seq {max_seq}: the {prompt}-token prompt of the prefill "
                        "fills every cache position, leaving none to decode into; give "
                        f"--max-seq {prompt + 1} or more")


def _float_model(model):
    """``(run, graph, input_ids's fixed length or None)`` of a float model on npuc's
    executor: ``run(feeds)`` gives every output by name."""
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.load import load_model
    from npuc.compiler.mapped import release_inputs

    graph = load_model(model)
    inputs = {v.name: v for v in graph.inputs}
    ids = inputs.get("input_ids")
    shape = getattr(ids.type, "shape", None) if ids is not None else None
    length = shape[1] if shape is not None and len(shape) > 1 and \
        isinstance(shape[1], int) else None

    def run(feeds: dict) -> dict:
        return execute(graph, feeds, products="float32", observe=release_inputs)
    return run, graph, length


def _user_prompts(graph, given) -> list:
    """The token ids of each calibration prompt in ``given`` (a path), read for
    ``graph``, the prefill model."""
    from npuc.compiler.samples import load_samples

    samples = load_samples(given, graph)
    if not samples or any("input_ids" not in s for s in samples):
        raise NpucError(f"--calibration {given}: a decoder calibrates on prompts; give "
                        "token ids (a .txt file, one prompt per line) or an .npz of "
                        "input_ids")
    return [np.asarray(s["input_ids"], np.int64) for s in samples]


def _input_names(model) -> set:
    """The graph inputs of an ONNX model (a file's weights not read)."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else \
        onnx.load(str(model), load_external_data=False)
    weights = {i.name for i in proto.graph.initializer}
    return {x.name for x in proto.graph.input if x.name not in weights}


def _vocab(model) -> int:
    """The embedding table's rows (the table ``input_ids`` indexes), 100 when unknown."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else \
        onnx.load(str(model), load_external_data=False)
    tables = {i.name: i.dims[0] for i in proto.graph.initializer if len(i.dims) == 2}
    for node in proto.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and \
                node.input[1] == "input_ids" and node.input[0] in tables:
            return int(tables[node.input[0]])
    return 100


def at_batch(samples: list, batch: int) -> list:
    """``samples`` (dicts of batch-first arrays) regrouped into as many samples of
    ``batch`` rows each: their rows taken in turn, cycling, so a decode program at any
    batch is calibrated on the same served steps."""
    rows = [{k: v[i:i + 1] for k, v in s.items()}
            for s in samples for i in range(len(next(iter(s.values()))))]
    out = []
    for j in range(len(samples)):
        picked = [rows[(j * batch + r) % len(rows)] for r in range(batch)]
        out.append({k: np.concatenate([p[k] for p in picked]) for k in picked[0]})
    return out
