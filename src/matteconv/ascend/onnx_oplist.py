"""CANN's published ONNX operator list, as data: which ONNX op types atc's ONNX parser (`--framework=5`) takes.

`inspect` and `om` check a user's ONNX against this list, not against what matteconv's exporter writes:
an official MODNet export's Shape, Gather, Expand or ConstantOfShape nodes are CANN-listed and pass.

Sources (the names as the pages spell them; `OP_TYPE` maps the page's spelling to the ONNX op_type):
- `CANN80`: the CANN 8.0.0 "支持ONNX算子清单" (operatorlist_00176). The 8.0.RC2 list says it covers Atlas
  inference products ("当前仅支持Atlas 推理系列产品", docs/reference/ascend-operator-rules.md): the Ascend 310 family.
- `CANN504`: the CANN 5.0.4 list (operatorlist_0071), for the few ops it has that 8.0's page lacks (AMCT's
  AscendDequant / AscendRequant deploy ops, BatchMatMul, AdaptiveMaxPool2D, Addcmul).
An op on neither list is not necessarily refused (a newer CANN may take it): the rule warns.
"""
from __future__ import annotations

CANN80 = "https://www.hiascend.com/doc_center/source/zh/canncommercial/800/apiref/aolapi/operatorlist_00176.html"
CANN504 = ("https://www.hiascend.com/doc_center/source/zh/canncommercial/5046/reference/fwoperatorlist/"
           "operatorlist_0071.html")

# the pages' entries, in their order
LIST_80 = tuple("""
    Abs Acos Acosh AdaptiveAvgPool2D Add AffineGrid And Argmax Argmin AscendAntiQuant AscendQuant Asin Asinh
    Atan Atanh AveragePool BatchNormalization BatchMultiClassNMS BitShift BitwiseAnd BitwiseNot BitwiseOr
    BitwiseXor Cast Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose Corr Cos Cosh
    Cumsum DeformableConv2D DepthToSpace Det Div Dropout DynSeqOuter Einsum Elu EmbeddingBag Equal Erf Exp
    Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
    GlobalMaxPool Greater GreaterOrEqual GridSample GRU Hardmax HardSigmoid HardSwish Identity If
    InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftMax
    LpNormalization LpPool LRN LSTM LSTMP MatMul Max MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization
    Min Mod MovingSumWithSigmoid Mul Multinomial Neg NonMaxSuppression NonZero Not OneHot Or Pad Pow
    RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
    ReduceLogSum ReduceLogSumExp ReduceMean ReduceMin ReduceProd ReduceSumSquare ReduceSum ReduceMax Relu
    Reshape Resize ReverseSequence RoiAlign RoiExtractor Round PRelu Scatter ScatterElements ScatterND Selu
    Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth
    Split Sqrt Squeeze Sub Sum Tan Tanh TfIdfVectorizer ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze
    Where Xor
""".split())
LIST_504_ONLY = tuple("""
    AdaptiveMaxPool2D Addcmul AscendRequantS16 AscendRequant AscendDequantS16 AscendDequant BatchMatMul
""".split())

# page spelling -> ONNX op_type where they differ
OP_TYPE = {"Argmax": "ArgMax", "Argmin": "ArgMin", "Cumsum": "CumSum", "LogSoftMax": "LogSoftmax"}

SOURCE: dict[str, str] = {OP_TYPE.get(n, n): CANN80 for n in LIST_80}
SOURCE.update({OP_TYPE.get(n, n): CANN504 for n in LIST_504_ONLY if OP_TYPE.get(n, n) not in SOURCE})


def listed(op_type: str) -> str | None:
    """The page that lists this ONNX op type (default domain), or None."""
    return SOURCE.get(op_type)
