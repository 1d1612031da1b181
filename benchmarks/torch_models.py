"""The PyTorch models of the acceptance checks, built offline with seeded random weights.

ResNet-50 and MobileNetV2 are written here in plain torch, layer for layer as torchvision
defines them (same modules, same order, same shapes), so that no torchvision is needed.
BERT-base, GPT-2 and ViT-base come from HuggingFace ``transformers``, built from their
default configs (no download).

Every model is returned in eval mode, with a dict of example inputs (numpy arrays, batch
``BATCH``) and the names of its inputs and outputs, by :func:`build`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

BATCH = 2  # batch of the example inputs; the batch axis is exported as dynamic
SEQ_LEN = 128
SEED = 0


# ---------------------------------------------------------------------------------------
# ResNet-50 (torchvision.models.resnet50)

def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: the stride is on the 3x3 convolution)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, pixel_values):
        x = self.maxpool(self.relu(self.bn1(self.conv1(pixel_values))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# ---------------------------------------------------------------------------------------
# MobileNetV2 (torchvision.models.mobilenet_v2, width_mult=1.0)

def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),  # linear projection
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = (  # t, c, n, s
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes=1000, width_mult=1.0):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features = [ConvBNReLU6(3, input_channel, stride=2)]
        for t, c, n, s in self.SETTINGS:
            output_channel = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, pixel_values):
        x = self.features(pixel_values)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _randomize_bn_stats(model: nn.Module, gen: torch.Generator) -> None:
    """Give BatchNorm non-trivial statistics and affine parameters, as a trained net has.

    With the init alone (mean 0, var 1, weight 1, bias 0) BN folding bugs would go unseen.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


# ---------------------------------------------------------------------------------------
# HuggingFace models, wrapped so that forward takes and returns plain tensors

class BertWrapper(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.model = BertModel(BertConfig())

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids, return_dict=True)
        return out.last_hidden_state, out.pooler_output


class GPT2Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.model = GPT2LMHeadModel(GPT2Config())

    def forward(self, input_ids, attention_mask):
        # With the mask given, as HF/optimum exports GPT-2; without it transformers derives
        # packed-sequence masks from position ids with aten::diff, which the TorchScript
        # exporter cannot export.
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                          return_dict=True).logits


class ViTWrapper(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        self.model = ViTForImageClassification(ViTConfig(num_labels=1000))

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values, return_dict=True).logits


# ---------------------------------------------------------------------------------------

@dataclass
class ModelSpec:
    name: str
    model: nn.Module
    inputs: dict[str, np.ndarray]  # in the order of forward's arguments
    output_names: list[str]

    def torch_args(self) -> tuple:
        return tuple(torch.from_numpy(a) for a in self.inputs.values())


def _image(rng) -> dict[str, np.ndarray]:
    return {"pixel_values": rng.standard_normal((BATCH, 3, 224, 224), dtype=np.float32)}


def _tokens(rng, vocab: int) -> np.ndarray:
    return rng.integers(0, vocab, (BATCH, SEQ_LEN), dtype=np.int64)


def _build_resnet50(rng, gen):
    m = ResNet((3, 4, 6, 3))
    _randomize_bn_stats(m, gen)
    return m, _image(rng), ["logits"]


def _build_mobilenetv2(rng, gen):
    m = MobileNetV2()
    _randomize_bn_stats(m, gen)
    return m, _image(rng), ["logits"]


def _build_bert(rng, gen):
    m = BertWrapper()
    mask = np.ones((BATCH, SEQ_LEN), dtype=np.int64)
    mask[1:, SEQ_LEN - 32:] = 0  # some padding, so that the mask matters
    token_types = np.zeros((BATCH, SEQ_LEN), dtype=np.int64)
    token_types[:, SEQ_LEN // 2:] = 1
    inputs = {"input_ids": _tokens(rng, 30522), "attention_mask": mask,
              "token_type_ids": token_types}
    return m, inputs, ["last_hidden_state", "pooler_output"]


def _build_gpt2(rng, gen):
    mask = np.ones((BATCH, SEQ_LEN), dtype=np.int64)
    mask[1:, SEQ_LEN - 32:] = 0  # right padding in the second sequence
    return GPT2Wrapper(), {"input_ids": _tokens(rng, 50257), "attention_mask": mask}, ["logits"]


def _build_vit(rng, gen):
    return ViTWrapper(), _image(rng), ["logits"]


BUILDERS = {
    "resnet50": _build_resnet50,
    "mobilenetv2": _build_mobilenetv2,
    "bert-base": _build_bert,
    "gpt2": _build_gpt2,
    "vit-base": _build_vit,
}
NAMES = list(BUILDERS)


def build(name: str) -> ModelSpec:
    """The model ``name`` (one of ``NAMES``) in eval mode, seeded, with example inputs."""
    if name not in BUILDERS:
        raise KeyError(f"unknown model '{name}'; choose from {', '.join(NAMES)}")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 1)
    rng = np.random.default_rng(SEED)
    model, inputs, outputs = BUILDERS[name](rng, gen)
    model.eval()
    return ModelSpec(name, model, inputs, outputs)
