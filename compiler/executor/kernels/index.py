"""Which module of this package holds each operator's kernel, by domain.

:func:`npuc.compiler.executor.kernels.get_kernel` imports only the module an operator
needs, instead of all of them: folding a Gather, an Unsqueeze and a Concat (what loading a
transformer does) then stays off the modules with Numba loops, and a compile that runs no
other node never loads Numba (about 0.3 s). ``tests/executor/test_kernel_index.py`` checks
this table against what the modules register, and prints the table as it should read when
a kernel was added or moved.
"""

from __future__ import annotations

MODULES = {
    "": {
        "attention": ("Attention", "RotaryEmbedding"),
        "binary": ("Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
                   "Clip", "Div", "Equal", "Greater", "GreaterOrEqual", "Less",
                   "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "Sub",
                   "Sum", "Where", "Xor"),
        "cast": ("BitCast", "Cast", "CastLike", "Identity"),
        "control": ("If", "Loop", "Scan", "SequenceMap"),
        "conv": ("Col2Im", "Conv", "ConvTranspose"),
        "creation": ("AffineGrid", "Constant", "ConstantOfShape", "EyeLike", "Range"),
        "elementwise": ("Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh",
                        "BitwiseNot", "Ceil", "Celu", "Cos", "Cosh", "Elu", "Erf", "Exp",
                        "Floor", "Gelu", "HardSigmoid", "HardSwish", "IsInf", "IsNaN",
                        "LeakyRelu", "Log", "Mish", "Neg", "Not", "PRelu", "Reciprocal",
                        "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh",
                        "Softplus", "Softsign", "Sqrt", "Swish", "Tan", "Tanh",
                        "ThresholdedRelu"),
        "global_pool": ("GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool"),
        "indexing": ("Compress", "Gather", "GatherElements", "GatherND", "NonZero",
                     "OneHot", "ReverseSequence", "Scatter", "ScatterElements", "ScatterND",
                     "TensorScatter", "Trilu"),
        "matmul": ("Einsum", "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"),
        "norm": ("BatchNormalization", "GroupNormalization", "Hardmax",
                 "InstanceNormalization", "LRN", "LayerNormalization", "LogSoftmax",
                 "LpNormalization", "MeanVarianceNormalization", "RMSNormalization",
                 "Softmax"),
        "pool": ("AveragePool", "LpPool", "MaxPool", "MaxRoiPool", "MaxUnpool"),
        "quant": ("ConvInteger", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                  "QuantizeLinear"),
        "rearrange": ("CenterCropPad", "DepthToSpace", "SpaceToDepth"),
        "reduce": ("ArgMax", "ArgMin", "CumProd", "CumSum", "Det", "ReduceL1", "ReduceL2",
                   "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                   "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"),
        "resize": ("Resize", "Upsample"),
        "rnn": ("GRU", "LSTM", "RNN"),
        "sampling": ("Bernoulli", "Dropout", "Multinomial", "RandomNormal",
                     "RandomNormalLike", "RandomUniform", "RandomUniformLike"),
        "sequence": ("ConcatFromSequence", "Optional", "OptionalGetElement",
                     "OptionalHasElement", "SequenceAt", "SequenceConstruct",
                     "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
                     "SplitToSequence"),
        "shape_ops": ("Concat", "Expand", "Flatten", "Pad", "Reshape", "Shape", "Size",
                      "Slice", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze"),
        "signal": ("BlackmanWindow", "DFT", "HammingWindow", "HannWindow",
                   "MelWeightMatrix", "STFT"),
        "sorting": ("TopK", "Unique"),
        "text": ("RegexFullMatch", "StringConcat", "StringNormalizer", "StringSplit",
                 "TfIdfVectorizer"),
        "vision": ("DeformConv", "GridSample", "NonMaxSuppression", "RoiAlign"),
    },
    "ai.onnx.ml": {
        "ml": ("ArrayFeatureExtractor", "Binarizer", "TreeEnsemble"),
        "text": ("LabelEncoder",),
    },
    "ai.onnx.preview.training": {
        "training": ("Adagrad", "Adam", "Momentum"),
    },
    "com.microsoft": {
        "contrib": ("BiasAdd", "BiasGelu", "BiasSoftmax", "FastGelu", "FusedConv",
                    "FusedMatMul", "Gelu", "LayerNormalization", "NhwcConv", "QuickGelu",
                    "SimplifiedLayerNormalization", "SkipLayerNormalization",
                    "SkipSimplifiedLayerNormalization"),
        "contrib_attention": ("Attention", "GroupQueryAttention", "MultiHeadAttention",
                              "RotaryEmbedding"),
        "contrib_quant": ("DequantizeLinear", "DynamicQuantizeLSTM",
                          "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits",
                          "QGemm", "QLinearAdd", "QLinearConcat", "QLinearConv",
                          "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearMul",
                          "QLinearSigmoid", "QuantizeLinear"),
    },
}


def module_of(op_type: str, domain: str = "") -> str | None:
    """The module (its name in this package) that registers ``domain::op_type``'s kernel,
    or None when none does."""
    for module, ops in MODULES.get(domain, {}).items():
        if op_type in ops:
            return module
    return None
