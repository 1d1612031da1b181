"""Export Llama decoders from transformers' own PyTorch code, as users export them.

    python benchmarks/export_llama.py                      # small, both exporters, eager+sdpa
    python benchmarks/export_llama.py --size 1b --layers 2 # Llama-3.2-1B's widths, 2 layers
    python benchmarks/export_llama.py --exporter dynamo --attn sdpa --max-seq 256

A ``LlamaForCausalLM`` built from a ``LlamaConfig`` (random weights, seed 0): ``small`` is
hidden 512, 4 layers, 8 heads with 2 KV heads, vocab 32000; ``1b`` is Llama-3.2-1B's
configuration (``--layers`` keeps its widths with fewer layers). Each export writes, under
``benchmarks/models/`` (or ``--out``), two forms with the cache (``use_cache``):

- ``llama-<size>-<exporter>-<attn>-prefill.onnx``: ``--prefill`` prompt tokens, no past;
- ``llama-<size>-<exporter>-<attn>-decode.onnx``: one token after ``--max-seq - 1`` cached
  positions.

Inputs ``input_ids``, ``attention_mask``, ``position_ids`` and, in decode form,
``past_key_values.{i}.key`` / ``.value``; outputs ``logits`` and ``present.{i}.key`` /
``.value``: the names ``npuc compile --decode-model`` and ``npuc verify --decode-steps``
read. ``<exporter>`` is ``torchscript`` (``torch.onnx.export(dynamo=False)``, opset 17) or
``dynamo`` (``dynamo=True``, its default opset); ``<attn>`` is transformers' attention
implementation, ``eager`` or ``sdpa``. Shapes are static. Then, for instance::

    npuc compile M-prefill.onnx --decode-model M-decode.onnx --max-seq 256 --target rngd
    npuc verify M-prefill.onnx --decode-model M-decode.onnx --max-seq 256 --decode-steps 8 \\
        --target rngd
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "models")
SIZES = {
    "small": dict(vocab_size=32000, hidden_size=512, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, intermediate_size=1376,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False),
    # Llama-3.2-1B's config.json
    "1b": dict(vocab_size=128256, hidden_size=2048, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, intermediate_size=8192,
               head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
               max_position_embeddings=131072,
               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}),
}


def decoder(size: str, layers: int | None, attn: str):
    """The model wrapped so that the cache is flat tensors in and out (HF's names)."""
    import torch
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    dims = dict(SIZES[size])
    if layers is not None:
        dims["num_hidden_layers"] = layers
    torch.manual_seed(0)
    config = LlamaConfig(**dims)
    model = LlamaForCausalLM._from_config(config, attn_implementation=attn).eval()

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=config)
            for i in range(0, len(past), 2):
                cache.update(past[i], past[i + 1], i // 2)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, past_key_values=cache, use_cache=True)
            present = []
            for layer in out.past_key_values.layers:
                present += [layer.keys, layer.values]
            return (out.logits, *present)

    return Flat(), config


def example(config, past: int, sequence: int):
    """Inputs of one form: ``sequence`` new tokens after ``past`` cached positions."""
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (1, sequence), generator=g)
    mask = torch.ones(1, past + sequence, dtype=torch.int64)
    pos = torch.arange(past, past + sequence).unsqueeze(0)
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    shape = (1, config.num_key_value_heads, past, head)
    cache = [torch.randn(shape, generator=g) for _ in range(2 * config.num_hidden_layers)
             if past]
    names = ["input_ids", "attention_mask", "position_ids"]
    for i in range(config.num_hidden_layers if past else 0):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    outputs = ["logits"]
    for i in range(config.num_hidden_layers):
        outputs += [f"present.{i}.key", f"present.{i}.value"]
    return (ids, mask, pos, *cache), names, outputs


def export(module, args, names, outputs, exporter: str, path: str) -> None:
    import tempfile

    import onnx
    import torch

    for p in (path, path + ".data"):
        if os.path.exists(p):
            os.remove(p)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            # past 2 GB TorchScript writes one file per tensor, named for the tensor, beside
            # the model: two exports in one folder would overwrite each other's. Export
            # alone, then keep the weights in one file named for the model.
            with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
                alone = os.path.join(tmp, "model.onnx")
                torch.onnx.export(module, args, alone, dynamo=False, opset_version=17,
                                  input_names=names, output_names=outputs)
                proto = onnx.load(alone)
                onnx.save_model(proto, path, save_as_external_data=True,
                                all_tensors_to_one_file=True,
                                location=os.path.basename(path) + ".data", size_threshold=1024)
        else:
            torch.onnx.export(module, args, path, dynamo=True, input_names=names,
                              output_names=outputs, external_data=True, verbose=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--layers", type=int, default=None, help="fewer layers, same widths")
    ap.add_argument("--exporter", choices=("torchscript", "dynamo"), action="append")
    ap.add_argument("--attn", choices=("eager", "sdpa"), action="append")
    ap.add_argument("--prefill", type=int, default=16, help="prompt tokens (default 16)")
    ap.add_argument("--max-seq", type=int, default=256, help="cache positions (default 256)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    tag = a.size if a.layers is None else f"{a.size}-{a.layers}l"
    failed = 0
    for attn in a.attn or ["eager", "sdpa"]:
        module, config = decoder(a.size, a.layers, attn)
        for exporter in a.exporter or ["torchscript", "dynamo"]:
            for form, past, seq in (("prefill", 0, a.prefill), ("decode", a.max_seq - 1, 1)):
                path = os.path.join(a.out, f"llama-{tag}-{exporter}-{attn}-{form}.onnx")
                t0 = time.perf_counter()
                try:
                    export(module, *example(config, past, seq), exporter, path)
                except Exception as e:  # noqa: BLE001 - report and go on
                    failed += 1
                    print(f"{path}: FAILED {type(e).__name__}: {' '.join(str(e).split())[:300]}")
                    continue
                print(f"{path}  {time.perf_counter() - t0:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
