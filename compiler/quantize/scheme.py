"""The quantization scheme of a target: precision, weights and activations.

Read only from the target's ``[quantization]`` table: a Target object, or a name or chip
file path resolved with ``npuc.targets.get_target``, so a custom chip file's rules are the
ones used.

The precision is the chip's preferred one unless the user asks for another, and a chip
that prefers a float format needing no calibration (RNGD's bf16, ATOM's fp16) is
quantized to that format; ``precision="int8"`` (or ``"fp8"``) asks for the calibrated one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from npuc.ir.errors import NpucError

PRECISIONS = ("int8", "fp8", "bf16", "fp16")


@dataclass(frozen=True)
class Scheme:
    """How to quantize for one chip.

    ``weights_per_channel``: one scale per output channel (Conv/Gemm/MatMul weights);
    ``weights_narrow``: int8 weights in [-127, 127] (so ``-w`` is representable);
    ``act_symmetric``: activations with zero point 0, else asymmetric int8 in [-128, 127].
    """

    target: str
    precision: str = "int8"
    weights_per_channel: bool = True
    weights_narrow: bool = True
    act_symmetric: bool = False
    dtypes: tuple[str, ...] = ("int8",)

    @property
    def integer(self) -> bool:
        return self.precision == "int8"

    @property
    def qmin(self) -> int:
        return -128

    @property
    def qmax(self) -> int:
        return 127

    @property
    def wmin(self) -> int:
        return -127 if self.weights_narrow else -128


def _from_target(target) -> Scheme:
    """The scheme a Target's ``[quantization]`` table describes."""
    q = target.quant
    preferred = q.preferred if q.preferred != "fp32" else "int8"
    return Scheme(target.name, preferred, q.weights == "per-channel",
                  bool(q.weights_narrow_range), q.activations == "symmetric", tuple(q.dtypes))


def scheme_for(target, precision: str | None = None) -> Scheme:
    """The scheme for a target (a name, a chip file path, a Target, or a Scheme) at
    ``precision``."""
    if isinstance(target, Scheme):
        scheme = target
    else:
        from npuc.targets import get_target

        scheme = _from_target(get_target(target or "generic-npu"))
    if precision is None:
        return scheme
    if precision not in PRECISIONS:
        raise NpucError(f"unknown precision '{precision}'; choose one of "
                        f"{', '.join(PRECISIONS)}")
    if precision not in scheme.dtypes and not (precision == "int8" and "fp32" in scheme.dtypes):
        raise NpucError(f"target '{scheme.target}' does not compute in {precision}; it "
                        f"supports {', '.join(scheme.dtypes)}")
    return replace(scheme, precision=precision)
