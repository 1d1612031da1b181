"""The zoo's catalogue: each model name with its family, configuration and summary."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from npuc.compiler.zoo import bert, decoder, gpt2, llama, mobilenet, resnet, ssd, vit


@dataclass(frozen=True)
class Entry:
    """One zoo model: how to build it and what to say about it.

    ``family`` is a module with ``build(builder, config)`` and ``input_specs(config)``;
    ``parameters`` is the trainable parameter count of the default configuration, the
    number the original model is known by (checked against the built model in tests).
    """

    family: ModuleType
    config: object
    summary: str
    parameters: int


ENTRIES: dict[str, Entry] = {
    "resnet50": Entry(resnet, resnet.ResNetConfig(),
                      "ResNet-50 (torchvision), 224x224 image, 1000 classes", 25_557_032),
    "mobilenetv2": Entry(mobilenet, mobilenet.MobileNetV2Config(),
                         "MobileNetV2 (torchvision), 224x224 image, 1000 classes",
                         3_504_872),
    "bert-base": Entry(bert, bert.BertConfig(),
                       "BERT-base uncased encoder (HuggingFace BertModel), 128 tokens",
                       109_482_240),
    "gpt2": Entry(gpt2, gpt2.GPT2Config(),
                  "GPT-2 small (HuggingFace GPT2LMHeadModel), 128 tokens", 124_439_808),
    "vit-base": Entry(vit, vit.ViTConfig(),
                      "ViT-B/16 (HuggingFace ViTForImageClassification), 224x224, 1000 "
                      "classes", 86_567_656),
    "llama-small": Entry(llama, llama.LlamaConfig(),
                         "Llama-style decoder (LlamaForCausalLM), hidden 512, 4 layers, 8 "
                         "heads with 2 KV heads, 128-token prefill", 43_848_192),
    "ssd-mobilenet": Entry(ssd, ssd.SSDConfig(),
                           "SSD-MobileNet v1 (MLPerf ssd-mobilenet), 300x300 image, 91 "
                           "classes, up to the box predictors", 6_819_839),
    "bert-large": Entry(bert, bert.BertConfig(hidden=1024, layers=24, heads=16,
                                              intermediate=4096, sequence=384),
                        "BERT-large uncased encoder (MLPerf BERT-99), 384 tokens",
                        335_141_888),
    "llama3.2-1b": Entry(llama, decoder.published(
        hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, tie_embeddings=True),
        "Llama 3.2 1B decoder, 128-token prefill, weights external (zeros)", 1_235_814_400),
    "llama3.1-8b": Entry(llama, decoder.published(),
                         "Llama 3.1 8B decoder, 128-token prefill, weights external (zeros)",
                         8_030_261_248),
    "llama3.1-70b": Entry(llama, decoder.published(
        hidden=8192, layers=80, heads=64, kv_heads=8, intermediate=28672),
        "Llama 3.1 70B decoder, 128-token prefill, weights external (zeros)", 70_553_706_496),
    "qwen2-7b": Entry(llama, decoder.published(
        vocab_size=152064, hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944,
        rope_theta=1e6, eps=1e-6, qkv_bias=True),
        "Qwen2 7B decoder, 128-token prefill, weights external (zeros)", 7_615_616_512),
    "resnet-tiny": Entry(resnet, resnet.ResNetConfig(layers=(1, 1, 1, 1), width=8,
                                                     image_size=32, num_classes=10),
                         "ResNet with one bottleneck per stage, width 8, 32x32, 10 classes",
                         130_962),
    "mobilenetv2-tiny": Entry(mobilenet, mobilenet.MobileNetV2Config(
        blocks=((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2)), first_channels=8,
        last_channels=64, image_size=32, num_classes=10),
        "MobileNetV2 with three block groups, 32x32, 10 classes", 13_834),
    "bert-tiny": Entry(bert, bert.BertConfig(vocab_size=1000, hidden=64, layers=2, heads=4,
                                             intermediate=256, max_positions=64,
                                             sequence=16),
                       "BERT encoder, 2 layers, hidden 64, 16 tokens", 172_480),
    "gpt2-tiny": Entry(gpt2, gpt2.GPT2Config(vocab_size=1000, hidden=64, layers=2, heads=4,
                                             max_positions=64, sequence=16),
                       "GPT-2 decoder, 2 layers, hidden 64, 16 tokens", 168_192),
    "llama-tiny": Entry(llama, llama.LlamaConfig(vocab_size=256, hidden=64, layers=2,
                                                 heads=4, kv_heads=2, intermediate=128,
                                                 sequence=8),
                        "Llama-style decoder, 2 layers, hidden 64, 4 heads with 2 KV heads, "
                        "8 tokens", 106_816),
    "llama-tiny-decode": Entry(llama, llama.LlamaConfig(vocab_size=256, hidden=64, layers=2,
                                                        heads=4, kv_heads=2, intermediate=128,
                                                        sequence=1, past=7, use_cache=True),
                               "llama-tiny's decode step: one token after 7 cached, the "
                               "KV cache in and out", 106_816),
    "decoder-tiny": Entry(llama, decoder.published(
        vocab_size=1000, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128,
        sequence=16), "the published-size decoders' structure, 2 layers, hidden 64, 4 heads "
        "(2 KV), 16 tokens", 202_048),
    "vit-tiny": Entry(vit, vit.ViTConfig(image_size=32, patch=8, hidden=64, layers=2,
                                         heads=4, intermediate=256, num_classes=10),
                      "ViT, 2 layers, hidden 64, 32x32 image in 8x8 patches, 10 classes",
                      114_250),
}
