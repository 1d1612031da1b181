"""npuc's own operators (domain ``npuc``): the forms the optimizer and the quantizer
create. Each has its schema (``register_op``, with shape inference), its kernel (composed
from the ONNX kernels, or exact integer code) and, for the float ones, its decomposition
back to standard ONNX nodes. Importing this package registers them all.

- :mod:`.fused`: FusedConv, FusedGemm, FusedMatMul (an activation epilogue) and Gelu;
- :mod:`.attention`: Attention (scaled dot-product, grouped-query heads, masks);
- :mod:`.decoder`: RMSNorm, Rotary, GatedMLP;
- :mod:`.kvcache`: KVCacheWrite (a decoder's cache written in place);
- :mod:`.quantized`: QConv, QMatMul, QAdd, QMul, Requantize, Lut, with their integer
  kernels in :mod:`.quantized_kernels`;
- :mod:`.emit`: the decompositions (``DECOMPOSE``) and the ONNX builders they share with
  the passes; :mod:`.shapes`: output types.
"""

from . import attention, decoder, fused, kvcache, quantized, quantized_kernels  # noqa: F401
from .emit import DECOMPOSE, decomposition, emit_activation, emit_gelu, emit_repeat_heads
from .fused import ACTIVATION_PARAMS, EPILOGUE, activate

__all__ = ["ACTIVATION_PARAMS", "DECOMPOSE", "EPILOGUE", "activate", "decomposition",
           "emit_activation", "emit_gelu", "emit_repeat_heads"]
