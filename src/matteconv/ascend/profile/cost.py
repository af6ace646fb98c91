"""Per-op cost on the Ascend AI Core: which engine runs the op, how long it takes and what bounds it.

The model (every constant from hardware.Soc, each with its source):
- Cube ops (Conv, ConvTranspose, MatMul/Gemm, InnerProduct) are tiled into 16 x K x 16 fractals (M output
  pixels x K input channels per tap x N output channels; K = 16 fp16, 32 INT8): cycles = ceil(M/16) *
  kh*kw * ceil(Cin_g/K) * ceil(Cout_g/16) per group, split over the AI cores. Channels that are not a multiple
  of the fractal pay for the padding (35 input channels cost as much as 48). A depthwise convolution (group =
  channels) runs 16 channels per fractal as a block-diagonal filter: 1/16 of the Cube's MACs are useful, which
  is how MobileNetV2 ends at about 5% of Cube peak (docs/design.md section 10). ConvTranspose is costed as the
  convolution of the stride-dilated input that computes it (CANN's Conv2DTranspose = Conv2DBackpropInput).
  compute = cycles / clock / cube_efficiency (fitted).
- Memory: every kernel reads its inputs and weights and writes its outputs once, in NC1HWC0 (channels padded
  to C0 = 16 fp16 / 32 INT8), at the fitted effective bandwidth. time = max(compute, memory) + one launch
  overhead (fitted): "memory" or "compute" bound, "padding" when padding makes up more than 20% of a
  compute-bound op's Cube work.
- atc fuses an activation, BatchNorm/Scale or dequantisation into the op before it when that op's output feeds
  nothing else (UB fusion): costed 0, reported as fused.
- Vector ops (elementwise, pooling, Resize, norms, Softmax): the larger of their element work at 256 bytes per
  cycle and core and their memory traffic. Norms with runtime statistics (InstanceNorm, MVN, LayerNorm) read
  their input three times (mean, variance, normalise) in three kernels.
- Layout changes: Concat/Slice along channels at a boundary that is not a multiple of C0 copy the tensor to
  repack C0 blocks ("layout"); at aligned boundaries they are free (atc addresses the blocks in place: an
  assumption). Reshape/Flatten of a 4-D map is a TransData from NC1HWC0 to ND ("layout").
- AI CPU: AvgPool with a window over 256 elements or a stride over 63 (atc warning W11001: Ascend/ModelZoo-PyTorch
  ACL_PyTorch/contrib/cv/segmentation/FastSCNN/README.md), bilinear Resize with a side over 2048 (CANN ONNX
  Resize page, ascend/rules.py AICPU_RESIZE_SIDE) and ops of no known kind run at hardware.Soc.aicpu_elements_per_s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ...export.pool_plan import AVGPOOL_AICPU_STRIDE, AVGPOOL_AICPU_WINDOW  # W11001 (FastSCNN README)
from .graph import Graph, Layer
from .hardware import Soc

RESIZE_AICPU_SIDE = 2048  # bilinear Resize with H or W above this (ascend/rules.py AICPU_RESIZE_SIDE)
# Report thresholds (how the table labels a layer, not device constants):
PADDING_SHARE = 0.2  # padding above this share of a compute-bound op's Cube work makes it "padding" bound
# Modelling assumptions, not published figures (at the fitted bandwidth these ops are memory-bound, so the
# element-op counts below rarely decide their time): a norm with runtime statistics runs as mean, variance and
# normalise kernels; vector ops cost 1 (add), 2 (activation, affine, quantise), 4 (transcendental, softmax pass)
# or 5 (norm) element operations per element; a bilinear output element reads 4 taps.
NORM_PASSES = 3  # mean, variance, normalise
CUBE_HEADS = ("conv", "deconv", "matmul")
FUSABLE = ("act", "affine", "dequant")


@dataclass
class LayerCost:
    """Predicted cost of one layer (or of AIPP / a TransData atc adds). Times in seconds."""

    name: str
    type: str
    engine: str  # Cube | Vector | AI CPU | AIPP | fused | none
    time: float
    bound: str  # compute | memory | padding | layout | aicpu | overhead | fused | free
    precision: str = "fp16"
    macs: int = 0  # useful multiply-accumulates
    cube_cycles: int = 0  # per AI core
    padded_share: float = 0.0  # share of the Cube work spent on padding
    bytes: int = 0
    compute: float = 0.0
    memory: float = 0.0
    detail: str = ""
    fused_into: str | None = None
    shape: tuple | None = None  # output shape
    channel_padding: float = 0.0  # seconds this layer spends on channels padded to C0 / the fractal (compute+memory)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_us"] = round(self.time * 1e6, 2)
        return d


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def tensor_bytes(shape, c0: int, itemsize: int) -> int:
    """Bytes of a tensor on the device: a 4-D map in NC1HWC0 (channels padded to c0), anything else as is."""
    if shape is None:
        return 0
    if len(shape) == 4:
        n, c, h, w = shape
        return n * _ceil(c, c0) * c0 * h * w * itemsize
    return math.prod(shape) * itemsize


def elements(shape) -> int:
    return math.prod(shape) if shape else 0


@dataclass
class CubeWork:
    cycles: int  # per core
    macs: int  # useful
    fractal_macs: int  # what the Cube computes, padding included
    detail: str
    exact_channel_cycles: float = 0.0  # per core, if channel counts filled the fractals exactly (rows still padded)

    @property
    def padded_share(self) -> float:
        return 1 - self.macs / self.fractal_macs if self.fractal_macs else 0.0


def cube_work(layer: Layer, soc: Soc, precision: str) -> CubeWork:
    """Cube fractal cycles of a conv / deconv / matmul layer (per AI core), useful and computed MACs."""
    m0, n0, k0 = soc.cube_m, soc.cube_n, soc.c0(precision)
    if layer.kind in ("conv", "deconv"):
        out = layer.out_shape
        kh, kw = layer.kernel
        g = layer.group
        if layer.kind == "conv":
            cout, cin_g = layer.weight[0], layer.weight[1]
        else:  # ConvTranspose weight (Cin, Cout/g, kh, kw): a conv of Cin/g -> Cout/g on the dilated input
            cin_g, cout = layer.weight[0] // g, layer.weight[1] * g
        cout_g = cout // g
        m = out[0] * out[2] * out[3]
        macs = m * cout * cin_g * kh * kw
        if g > 1 and cin_g == 1 and cout_g == 1:  # depthwise: 16 channels per block-diagonal fractal
            total = _ceil(m, m0) * kh * kw * _ceil(cout, n0)
            exact = _ceil(m, m0) * kh * kw * cout / n0
            how = f"depthwise {kh}x{kw}: {_ceil(cout, n0)} blocks of {n0} channels, 1/{n0} of each fractal useful"
        else:
            total = g * _ceil(m, m0) * kh * kw * _ceil(cin_g, k0) * _ceil(cout_g, n0)
            exact = g * _ceil(m, m0) * kh * kw * (cin_g / k0) * (cout_g / n0)
            how = (f"{kh}x{kw} conv{'' if g == 1 else f' group {g}'}: Cin {cin_g}->{_ceil(cin_g, k0) * k0}, "
                   f"Cout {cout_g}->{_ceil(cout_g, n0) * n0}")
        fractal = total * m0 * n0 * k0
    else:  # matmul: (.., M, K) x (K, N)
        k, n = layer.weight if layer.weight else (layer.in_shapes[1][-2], layer.in_shapes[1][-1])
        m = elements(layer.in_shape) // k
        macs = m * k * n
        total = _ceil(m, m0) * _ceil(k, k0) * _ceil(n, n0)
        exact = _ceil(m, m0) * (k / k0) * (n / n0)
        fractal = total * m0 * n0 * k0
        how = f"matmul M {m}->{_ceil(m, m0) * m0}, K {k}->{_ceil(k, k0) * k0}, N {n}->{_ceil(n, n0) * n0}"
    return CubeWork(_ceil(total, soc.cores), macs, fractal, how, exact / soc.cores)


def _mem(soc: Soc, nbytes: int) -> float:
    return nbytes / soc.bandwidth


def _vector(soc: Soc, n_elements: int, ops_per_element: float = 1.0) -> float:
    rate = soc.vector_elements_per_cycle() * soc.cores * soc.clock_hz
    return n_elements * ops_per_element / rate


def _finish(lc: LayerCost, soc: Soc, launches: int = 1) -> LayerCost:
    lc.time = max(lc.compute, lc.memory) + launches * soc.op_overhead
    if lc.bound == "":
        if soc.op_overhead * launches > max(lc.compute, lc.memory):
            lc.bound = "overhead"
        else:
            lc.bound = "compute" if lc.compute >= lc.memory else "memory"
    return lc


def _aicpu(layer: Layer, soc: Soc, why: str, n: int | None = None) -> LayerCost:
    n = elements(layer.out_shape) if n is None else n
    lc = LayerCost(layer.name, layer.type, "AI CPU", 0.0, "aicpu", compute=n / soc.aicpu_elements_per_s,
                   detail=why, shape=layer.out_shape)
    return _finish(lc, soc)


def avgpool_on_aicpu(layer: Layer) -> str | None:
    """Why atc puts this average pool on the AI CPU (W11001), or None."""
    if layer.kind != "pool" or layer.attrs.get("mode") != "avg" or layer.in_shape is None:
        return None
    if layer.attrs.get("global"):
        kh, kw = layer.in_shape[2], layer.in_shape[3]
    else:
        kh, kw = layer.kernel
    if kh * kw > AVGPOOL_AICPU_WINDOW:
        return f"average pool window {kh}x{kw} = {kh * kw} > {AVGPOOL_AICPU_WINDOW} elements (W11001)"
    if max(layer.stride) > AVGPOOL_AICPU_STRIDE and not layer.attrs.get("global"):
        return f"average pool stride {max(layer.stride)} > {AVGPOOL_AICPU_STRIDE} (W11001)"
    return None


def resize_on_aicpu(layer: Layer) -> str | None:
    if layer.kind != "resize" or layer.attrs.get("mode") not in ("linear", "bilinear"):
        return None
    sides = [d for s in (layer.in_shape, layer.out_shape) if s and len(s) == 4 for d in s[2:]]
    big = max(sides, default=0)
    return None if big <= RESIZE_AICPU_SIDE else f"bilinear Resize side {big} > {RESIZE_AICPU_SIDE}"


def _channel_aligned(shapes, c0: int) -> bool:
    return all(s is None or len(s) != 4 or s[1] % c0 == 0 for s in shapes)


def layer_cost(layer: Layer, soc: Soc, precision: str = "fp16", aicpu_fallback: bool = True,
               quantize_input: bool = True) -> LayerCost:
    """Cost of one layer that is not fused away. `precision` is the layer's own (fp16 or int8; only Cube ops
    run in INT8). aicpu_fallback=False costs a pool or Resize on its AI Core kernel even past atc's limits (what
    a fix would give). quantize_input=False: an INT8 layer whose input another Cube op writes in INT8 already
    (atc fuses dequantise + quantise into that op's output: AscendRequant), so no AscendQuant pass of its own."""
    kind = layer.kind
    c0 = soc.c0("fp16")
    io = sum(tensor_bytes(s, c0, 2) for s in layer.in_shapes) + sum(tensor_bytes(s, c0, 2) for s in layer.out_shapes)
    if kind in CUBE_HEADS:
        if layer.weight is None or layer.out_shape is None or (kind == "matmul" and layer.in_shape is None):
            return _aicpu(layer, soc, "weight or shape unknown: costed as AI CPU")
        work = cube_work(layer, soc, precision)
        k0 = soc.c0(precision)
        isz = 1 if precision == "int8" else 2
        if kind == "matmul":
            k, n = layer.weight
            wbytes = _ceil(k, k0) * k0 * _ceil(n, soc.cube_n) * soc.cube_n * isz
        else:
            a, b, kh, kw = layer.weight
            wbytes = _ceil(a, soc.cube_n) * soc.cube_n * _ceil(b, k0) * k0 * kh * kw * isz
        inb = tensor_bytes(layer.in_shape, k0, isz)
        outb = tensor_bytes(layer.out_shape, c0, 2)
        nbytes = inb + outb + wbytes
        extra = ""
        if precision == "int8" and quantize_input:  # the AscendQuant before it: fp16 in, int8 out
            nbytes += tensor_bytes(layer.in_shape, c0, 2)
            extra = "; + quantise input"
        lc = LayerCost(layer.name, layer.type, "Cube", 0.0, "", precision, work.macs, work.cycles,
                       work.padded_share, nbytes, work.cycles / soc.clock_hz / soc.fitted.cube_efficiency,
                       _mem(soc, nbytes), work.detail + extra, shape=layer.out_shape)
        _finish(lc, soc)
        if lc.bound == "compute" and work.padded_share > PADDING_SHARE:
            lc.bound = "padding"
        # the same layer with channel counts that fill C0 blocks and fractals exactly
        exact_bytes = (elements(layer.in_shape) * isz + elements(layer.out_shape) * 2 + math.prod(layer.weight) * isz
                       + (elements(layer.in_shape) * 2 if precision == "int8" and quantize_input else 0))
        exact = max(work.exact_channel_cycles / soc.clock_hz / soc.fitted.cube_efficiency, _mem(soc, exact_bytes))
        lc.channel_padding = max(0.0, max(lc.compute, lc.memory) - exact)
        return lc
    if kind == "free":
        return LayerCost(layer.name, layer.type, "none", 0.0, "free", shape=layer.out_shape)
    if kind == "aicpu":
        return _aicpu(layer, soc, f"{layer.type}: no AI Core kernel known to this model")
    if kind == "pool":
        why = avgpool_on_aicpu(layer) if aicpu_fallback else None
        if why:
            return _aicpu(layer, soc, why, elements(layer.in_shape))
        lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "", bytes=io,
                       compute=_vector(soc, elements(layer.in_shape)), memory=_mem(soc, io),
                       detail=f"{layer.attrs.get('mode')} pool", shape=layer.out_shape)
        return _finish(lc, soc)
    if kind == "resize":
        why = resize_on_aicpu(layer) if aicpu_fallback else None
        if why:
            return _aicpu(layer, soc, why)
        taps = 4 if layer.attrs.get("mode") in ("linear", "bilinear") else 1
        lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "", bytes=io,
                       compute=_vector(soc, elements(layer.out_shape), 2 * taps), memory=_mem(soc, io),
                       detail=f"{layer.attrs.get('mode')} resize", shape=layer.out_shape)
        return _finish(lc, soc)
    if kind == "norm":
        nbytes = NORM_PASSES * tensor_bytes(layer.in_shape, c0, 2) + tensor_bytes(layer.out_shape, c0, 2)
        lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "", bytes=nbytes,
                       compute=_vector(soc, elements(layer.in_shape), 5), memory=_mem(soc, nbytes),
                       detail="runtime statistics: mean, variance, normalise (3 kernels)", shape=layer.out_shape)
        return _finish(lc, soc, launches=NORM_PASSES)
    if kind in ("concat", "slice"):
        axis = layer.attrs.get("axis", 1)
        shapes = layer.in_shapes + layer.out_shapes
        four_d = any(s is not None and len(s) == 4 for s in shapes)
        if four_d and axis % 4 == 1 and _channel_aligned(shapes, c0):
            return LayerCost(layer.name, layer.type, "none", 0.0, "free",
                             detail=f"channel boundaries multiples of {c0}: addressed in place", shape=layer.out_shape)
        lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "layout" if four_d and axis % 4 == 1 else "",
                       bytes=io, memory=_mem(soc, io), shape=layer.out_shape,
                       detail=(f"channels {[s[1] for s in shapes if s and len(s) == 4]} not multiples of {c0}: "
                               "C0 blocks repacked") if four_d and axis % 4 == 1 else "copy")
        return _finish(lc, soc)
    if kind == "reshape":
        if layer.in_shape is not None and len(layer.in_shape) == 4:
            lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "layout", bytes=io, memory=_mem(soc, io),
                           detail="TransData NC1HWC0 -> ND", shape=layer.out_shape)
            return _finish(lc, soc)
        return LayerCost(layer.name, layer.type, "none", 0.0, "free", shape=layer.out_shape)
    # eltwise, act, affine (standalone), reduce, softmax, quant, dequant
    ops = {"softmax": 4, "act": 2, "affine": 2, "reduce": 1, "quant": 2, "dequant": 2}.get(kind, 1)
    if layer.type in ("Sigmoid", "TanH", "Tanh", "Exp", "Log", "Div", "Reciprocal", "Sqrt", "Pow"):
        ops = 4
    n = max((elements(s) for s in [*layer.in_shapes, *layer.out_shapes] if s), default=0)
    lc = LayerCost(layer.name, layer.type, "Vector", 0.0, "", bytes=io, compute=_vector(soc, n, ops),
                   memory=_mem(soc, io), detail=kind, shape=layer.out_shape)
    return _finish(lc, soc, launches=3 if kind == "softmax" else 1)


def fused_layers(graph: Graph) -> dict[str, str]:
    """Layer -> the layer atc fuses it into (UB fusion):
    - an activation, BatchNorm/Scale/Power or dequantisation whose input comes from a Cube op (or a layer already
      fused into one) or from an elementwise op, when that input feeds nothing else;
    - an Add/Eltwise (the residual add) one of whose inputs comes from a Cube op that feeds nothing else: the
      convolution adds the other input as it writes its output (atc's Conv2D + Add (+ ReLU) fusion)."""
    by_name = graph.by_name
    head: dict[str, str] = {}
    for la in graph.layers:
        if not la.inputs:
            continue
        if la.kind in FUSABLE:
            cands = la.inputs[:1]
        elif (la.kind == "eltwise" and len(la.inputs) == 2
              and (la.type == "Add" or (la.type == "Eltwise" and la.attrs.get("operation", "sum") == "sum"))):
            cands = la.inputs
        else:
            continue
        for t in cands:
            src = graph.producer.get(t)
            if src is None or len(graph.consumers.get(t, [])) != 1:
                continue
            root = head.get(src, src)
            if by_name[root].kind in CUBE_HEADS or (la.kind in FUSABLE and by_name[root].kind == "eltwise"):
                head[la.name] = root
                break
    return head


@dataclass
class Precisions:
    """Which Cube layers run in INT8: every Cube layer under `int8` unless a quantization record says which
    (layers it skipped stay fp16); layers whose weights are int8 (an AMCT deploy model) always."""

    default: str = "fp16"
    int8_layers: set | None = None  # None: all Cube layers under default int8
    skipped: dict = field(default_factory=dict)  # layer -> why it stays fp16 (from the record)

    def of(self, layer: Layer) -> str:
        if layer.kind not in CUBE_HEADS:
            return "fp16"
        if layer.weight_dtype == "int8":
            return "int8"
        if self.default != "int8":
            return "fp16"
        if self.int8_layers is None:
            return "int8"
        return "int8" if layer.name in self.int8_layers else "fp16"
