"""A model as the cost model walks it: layers with every input and output shape, kernel parameters and the
consumers of each tensor (for atc's fusions).

ONNX: shapes from `onnx.shape_inference` (every tensor must get a static shape: a model exported with dynamic
axes is refused with the fix). Caffe: parameters from the prototxt, blob shapes from pycaffe in its worker
process (matteconv.ascend.ops.caffe_shapes). Layer types are mapped onto a few kinds the cost model knows
(`KINDS`); an op of no known kind is costed as an AI CPU op and warned about.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import MatteconvError

# kind -> ONNX op types / Caffe layer types
KINDS = {
    "conv": {"Conv", "Convolution"},
    "deconv": {"ConvTranspose", "Deconvolution"},
    "matmul": {"MatMul", "Gemm", "InnerProduct"},
    "pool": {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Pooling"},
    "resize": {"Resize", "Upsample", "BilinearInterpolate", "Interp"},
    "norm": {"InstanceNormalization", "MVN", "MeanVarianceNormalization", "LayerNormalization",
             "GroupNormalization"},
    "reduce": {"ReduceMean", "ReduceSum", "ReduceMax", "Reduction"},
    "act": {"Relu", "ReLU", "ReLU6", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "TanH", "Tanh", "HardSigmoid",
            "HardSwish", "Elu", "Swish"},
    "affine": {"BatchNormalization", "BatchNorm", "Scale", "Power"},
    "eltwise": {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Max", "Min", "Eltwise", "Exp", "Log", "Neg", "Abs",
                "Reciprocal"},
    "concat": {"Concat"},
    "slice": {"Slice", "Split"},
    "reshape": {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"},
    "softmax": {"Softmax"},
    "quant": {"AscendQuant", "Quant"},
    "dequant": {"AscendDequant", "DeQuant", "AntiQuant", "AscendAntiQuant"},
    "free": {"Constant", "Shape", "Gather", "Expand", "Identity", "Dropout", "ConstantOfShape", "Range", "Cast",
             "Input", "Split_free", "Silence"},
}
_KIND_OF = {t: k for k, types in KINDS.items() for t in types}


@dataclass
class Layer:
    """One node/layer. Shapes are NCHW tuples (or shorter for matrices); `weight` is the filter shape
    (Cout, Cin/group, kh, kw) of a conv, (K, N) of a matmul; `attrs` holds kind-specific parameters:
    pool: mode (max|avg), kernel (h, w), stride (h, w), global; resize: mode; concat/slice: axis."""

    name: str
    type: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    in_shapes: list[tuple[int, ...] | None]
    out_shapes: list[tuple[int, ...] | None]
    weight: tuple[int, ...] | None = None
    weight_dtype: str = "float32"
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    group: int = 1
    attrs: dict = field(default_factory=dict)

    @property
    def in_shape(self) -> tuple[int, ...] | None:
        return self.in_shapes[0] if self.in_shapes else None

    @property
    def out_shape(self) -> tuple[int, ...] | None:
        return self.out_shapes[0] if self.out_shapes else None


@dataclass
class Graph:
    path: Path
    framework: str  # onnx | caffe
    layers: list[Layer]
    inputs: dict[str, tuple[int, ...]]  # activation inputs (no weights)
    outputs: dict[str, tuple[int, ...]]
    output_dtypes: dict[str, str]
    consumers: dict[str, list[str]] = field(default_factory=dict)  # tensor -> consumer layer names
    producer: dict[str, str] = field(default_factory=dict)  # tensor -> producing layer name

    def __post_init__(self):
        self.consumers, self.producer = {}, {}
        for la in self.layers:
            for t in la.inputs:
                self.consumers.setdefault(t, []).append(la.name)
            for t in la.outputs:
                self.producer[t] = la.name

    @property
    def by_name(self) -> dict[str, Layer]:
        return {la.name: la for la in self.layers}

    def input_hw(self) -> tuple[int, int]:
        """(H, W) of the first 4-D input."""
        for shape in self.inputs.values():
            if len(shape) == 4:
                return shape[2], shape[3]
        raise MatteconvError(f"{self.path}: no 4-D input (NCHW) to size")

    def scaled(self, h: int, w: int) -> "Graph":
        """The same graph at input H x W, every feature map scaled with the input (a fully convolutional model
        whose maps all divide the input evenly, as MODNet's do at multiples of 32). A map of 1x1 (after a global
        pool) stays 1x1. Raises MatteconvError when a map would not divide evenly."""
        h0, w0 = self.input_hw()

        def sc(shape):
            if shape is None or len(shape) != 4 or (shape[2] == 1 and shape[3] == 1):
                return shape
            hh, ww = shape[2] * h / h0, shape[3] * w / w0
            if hh != int(hh) or ww != int(ww) or hh < 1 or ww < 1:
                raise MatteconvError(f"{self.path}: a {shape[2]}x{shape[3]} map does not scale evenly to input "
                                     f"{h}x{w} (use a multiple of {h0 // math.gcd(h0, shape[2])})")
            return (*shape[:2], int(hh), int(ww))

        layers = [replace(la, in_shapes=[sc(s) for s in la.in_shapes], out_shapes=[sc(s) for s in la.out_shapes],
                          attrs=dict(la.attrs)) for la in self.layers]
        return Graph(self.path, self.framework, layers, {k: sc(v) for k, v in self.inputs.items()},
                     {k: sc(v) for k, v in self.outputs.items()}, dict(self.output_dtypes))


def load_graph(path: str | Path) -> Graph:
    """ONNX (.onnx) or Caffe (.prototxt) -> Graph. Raises MatteconvError naming the file for an unreadable model,
    unknown extension or shapes that are not static."""
    path = Path(path)
    if not path.is_file():
        raise MatteconvError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        return _onnx_graph(path)
    if path.suffix == ".prototxt":
        return _caffe_graph(path)
    raise MatteconvError(f"{path}: profile takes an .onnx or a .prototxt model")


# --- ONNX -------------------------------------------------------------------------------------------------------

_ONNX_DTYPES = {1: "float32", 10: "float16", 3: "int8", 2: "uint8", 6: "int32", 7: "int64", 11: "float64"}


def _onnx_graph(path: Path) -> Graph:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # DecodeError, InferenceError, OSError...
        raise MatteconvError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    g = model.graph
    if not g.node:
        raise MatteconvError(f"{path}: no nodes in the graph: nothing to profile")
    from ..ops import _dims

    inits = {i.name: i for i in g.initializer}
    shapes = {vi.name: _dims(vi) for vi in [*g.input, *g.value_info, *g.output]}
    shapes.update({n: tuple(int(d) for d in i.dims) for n, i in inits.items()})
    inputs = {vi.name: shapes.get(vi.name) for vi in g.input if vi.name not in inits}
    bad = [n for n, s in inputs.items() if s is None]
    if bad:
        raise MatteconvError(f"{path}: input {bad[0]!r} has no static shape: profile needs fixed sizes "
                             "(export without --dynamic, or at the size to profile)")
    layers = []
    for i, node in enumerate(g.node):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kind = _KIND_OF.get(node.op_type, "aicpu")
        la = Layer(node.name or f"{node.op_type}_{i}", node.op_type, kind,
                   [t for t in node.input if t and t not in inits], list(node.output),
                   [shapes.get(t) for t in node.input if t and t not in inits], [shapes.get(t) for t in node.output])
        if kind in ("conv", "deconv"):
            w = inits.get(node.input[1]) if len(node.input) > 1 else None
            la.weight = tuple(int(d) for d in w.dims) if w is not None else shapes.get(node.input[1])
            la.weight_dtype = _ONNX_DTYPES.get(w.data_type, "float32") if w is not None else "float32"
            ks = attrs.get("kernel_shape") or (la.weight[2:] if la.weight else (1, 1))
            la.kernel = (int(ks[0]), int(ks[-1]))
            st = attrs.get("strides") or [1, 1]
            la.stride = (int(st[0]), int(st[-1]))
            la.group = int(attrs.get("group", 1))
        elif kind == "matmul":
            w = next((inits[t] for t in node.input[1:2] if t in inits), None)
            if w is not None:
                la.weight = tuple(int(d) for d in w.dims)
                la.weight_dtype = _ONNX_DTYPES.get(w.data_type, "float32")
                if node.op_type == "Gemm" and attrs.get("transB", 0):
                    la.weight = tuple(reversed(la.weight))
        elif kind == "pool":
            glob = node.op_type.startswith("Global")
            ks = attrs.get("kernel_shape", [1, 1])
            st = attrs.get("strides", [1, 1])
            la.attrs = {"mode": "max" if "Max" in node.op_type else "avg", "global": glob}
            la.kernel, la.stride = (int(ks[0]), int(ks[-1])), (int(st[0]), int(st[-1]))
        elif kind == "resize":
            mode = attrs.get("mode", b"nearest")
            la.attrs = {"mode": mode.decode() if isinstance(mode, bytes) else mode}
        elif kind in ("concat", "slice"):
            la.attrs = {"axis": int(attrs.get("axis", 0))}
            if node.op_type == "Slice" and len(node.input) > 3 and node.input[3] in inits:
                la.attrs["axis"] = int(onnx.numpy_helper.to_array(inits[node.input[3]]).ravel()[0])
        layers.append(la)
    outputs = {vi.name: shapes.get(vi.name) for vi in g.output}
    dtypes = {vi.name: _ONNX_DTYPES.get(vi.type.tensor_type.elem_type, "float32") for vi in g.output}
    return Graph(path, "onnx", layers, inputs, outputs, dtypes)


# --- Caffe ------------------------------------------------------------------------------------------------------

_CAFFE_POOL = {0: "max", 1: "avg"}  # caffe.proto PoolingParameter.PoolMethod: MAX = 0, AVE = 1


def _caffe_graph(path: Path) -> Graph:
    from ...export.caffe.upgrade import read_net
    from ...export.caffe.writer import spatial_pair
    from ..ops import caffe_shapes

    nt = read_net(path)
    shapes, err = caffe_shapes(path)
    if not shapes:
        raise MatteconvError(f"{path}: blob shapes unknown ({err}): profile needs pycaffe to load the net")
    layers, inputs = [], {}
    version: dict[str, str] = {}  # blob -> its current SSA name (in-place layers write a new version)
    writes: dict[str, int] = {}

    def produce(top: str) -> str:
        writes[top] = writes.get(top, 0) + 1
        version[top] = top if writes[top] == 1 else f"{top}#{writes[top] - 1}"
        return version[top]

    for name in nt.net.input:  # top-level `input:` + `input_shape`/`input_dim` (no Input layer)
        if name in shapes:
            inputs[produce(name)] = shapes[name]
    for la in nt.test_layers:
        if la.type == "Input" or la.type == "Data":
            for t in la.top:
                inputs[produce(t)] = shapes[t]
            continue
        kind = _KIND_OF.get(la.type, "aicpu")
        bottoms = [version.get(b, b) for b in la.bottom]
        lay = Layer(la.name, la.type, kind, bottoms, [], [shapes.get(b) for b in la.bottom],
                    [shapes.get(t) for t in la.top])
        lay.outputs = [produce(t) for t in la.top]
        if kind in ("conv", "deconv"):
            p = la.convolution_param
            lay.kernel = spatial_pair(p, "kernel_size", "kernel", 0)
            lay.stride = spatial_pair(p, "stride", "stride", 1)
            lay.group = int(p.group)
            cin = lay.in_shape[1] if lay.in_shape else 0
            if kind == "conv":
                lay.weight = (int(p.num_output), cin // lay.group, *lay.kernel)
            else:
                lay.weight = (cin, int(p.num_output) // lay.group, *lay.kernel)
        elif kind == "matmul":
            k = math.prod(lay.in_shape[1:]) if lay.in_shape else 0
            lay.weight = (k, int(la.inner_product_param.num_output))
        elif kind == "pool":
            p = la.pooling_param  # PoolingParameter: kernel_size/stride are single ints, or _h/_w
            lay.kernel = ((int(p.kernel_h), int(p.kernel_w)) if p.HasField("kernel_h")
                          else (int(p.kernel_size),) * 2)
            lay.stride = (int(p.stride_h), int(p.stride_w)) if p.HasField("stride_h") else (int(p.stride),) * 2
            lay.attrs = {"mode": _CAFFE_POOL.get(int(p.pool), "other"), "global": bool(p.global_pooling)}
        elif kind == "resize":
            lay.attrs = {"mode": "linear" if la.type in ("BilinearInterpolate", "Interp") else "nearest"}
        elif kind == "concat":
            lay.attrs = {"axis": int(la.concat_param.axis)}
        elif kind == "slice":
            lay.attrs = {"axis": int(la.slice_param.axis)}
        elif la.type == "Eltwise":  # EltwiseParameter.EltwiseOp: PROD = 0, SUM = 1 (default), MAX = 2
            lay.attrs = {"operation": {0: "prod", 1: "sum", 2: "max"}.get(int(la.eltwise_param.operation), "sum")}
        layers.append(lay)
    consumed = {t for la in layers for t in la.inputs}
    outs = [t for la in layers for t in la.outputs if t not in consumed]
    shape_of = {t: s for la in layers for t, s in zip(la.outputs, la.out_shapes)}
    return Graph(path, "caffe", layers, inputs, {t: shape_of[t] for t in outs}, {t: "float32" for t in outs})
