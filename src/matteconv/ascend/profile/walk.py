"""The graph walk: every layer's cost in execution order, plus what atc adds around the model (AIPP on the
input, the TransData from the AI Core's NC1HWC0 to the output's NCHW), the total and the predicted fps.

The AI Core runs one kernel at a time on one stream (a model launched with `aclmdlExecute` runs its tasks in
order), so the total is the sum. The batch-1 times it is calibrated on (msame, benchmark) time
`aclmdlExecute` alone: AIPP and the output TransData included, host copies excluded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import MatteconvError
from .cost import LayerCost, Precisions, elements, fused_layers, layer_cost, tensor_bytes
from .graph import Graph, load_graph
from .hardware import Soc, get_soc

AIPP_BYTES_PER_PIXEL = {"YUV420SP_U8": 1.5, "RGB888_U8": 3, "XRGB8888_U8": 4, "YUV400_U8": 1}


@dataclass
class Profile:
    model: str
    soc: str
    precision: str
    input_hw: tuple[int, int]
    layers: list[LayerCost]
    extras: list[LayerCost]  # AIPP, input/output TransData
    output_type: str
    aipp: str | None
    constants: dict
    warnings: list = field(default_factory=list)  # speed.SpeedWarning

    @property
    def total(self) -> float:
        return sum(x.time for x in self.layers) + sum(x.time for x in self.extras)

    @property
    def fps(self) -> float:
        return 1.0 / self.total if self.total > 0 else math.inf

    def by(self, key: str) -> dict[str, float]:
        """Seconds per engine or bound ('engine' / 'bound'), AIPP and TransData included."""
        out: dict[str, float] = {}
        for x in [*self.layers, *self.extras]:
            if x.time:
                out[getattr(x, key)] = out.get(getattr(x, key), 0.0) + x.time
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def macs(self) -> int:
        return sum(x.macs for x in self.layers)

    def cube_use(self, soc: Soc) -> float:
        """Useful fp16-equivalent MACs over the Cube's peak for the predicted time."""
        peak = soc.cores * soc.clock_hz * soc.cube_m * soc.cube_n * soc.cube_k_fp16
        return self.macs / (peak * self.total) if self.total else 0.0

    def to_dict(self) -> dict:
        return {"model": self.model, "soc": self.soc, "precision": self.precision, "input_hw": list(self.input_hw),
                "output_type": self.output_type, "aipp": self.aipp, "total_ms": round(self.total * 1e3, 4),
                "fps": round(self.fps, 2), "gmacs": round(self.macs / 1e9, 4),
                "by_engine_ms": {k: round(v * 1e3, 4) for k, v in self.by("engine").items()},
                "by_bound_ms": {k: round(v * 1e3, 4) for k, v in self.by("bound").items()},
                "constants": self.constants, "layers": [x.to_dict() for x in self.layers],
                "extras": [x.to_dict() for x in self.extras], "warnings": [w.to_dict() for w in self.warnings]}


def output_transdata(name: str, shape, dtype: str, soc: Soc) -> LayerCost:
    """The TransData atc appends for an output: NC1HWC0 fp16 -> NCHW in the output's dtype. fp16: one copy at
    the fitted bandwidth. fp32: the conversion goes the slow way, at the AI CPU element rate measured on ICNet
    (hardware.ICNET: 558 ms against 5.5 ms for the same output in fp16)."""
    c0 = soc.c0("fp16")
    n = elements(shape)
    if shape is None or len(shape) != 4:
        nbytes = n * 2 * 2
    else:
        nbytes = tensor_bytes(shape, c0, 2) + n * (4 if dtype == "float32" else 2)
    lc = LayerCost(f"TransData({name})", "TransData", "Vector", 0.0, "layout", bytes=nbytes,
                   memory=nbytes / soc.bandwidth, shape=tuple(shape) if shape else None,
                   detail=f"NC1HWC0 fp16 -> {'NCHW' if shape and len(shape) == 4 else 'ND'} "
                          f"{'fp32' if dtype == 'float32' else 'fp16'}")
    if dtype == "float32":
        lc.engine = "AI CPU"
        lc.compute = n / soc.aicpu_elements_per_s
    lc.time = max(lc.compute, lc.memory) + soc.op_overhead
    return lc


def aipp_cost(name: str, shape, input_format: str, soc: Soc) -> LayerCost:
    """AIPP before the first layer: reads the uint8 image, writes fp16 NC1HWC0 (C0 = 16), on the AI Core's
    memory engine (docs/design.md section 4): memory-bound."""
    n, _, h, w = shape
    per_px = AIPP_BYTES_PER_PIXEL.get(input_format, 3)
    nbytes = int(n * h * w * per_px) + tensor_bytes(shape, soc.c0("fp16"), 2)
    lc = LayerCost(f"AIPP({name})", "AIPP", "AIPP", 0.0, "memory", bytes=nbytes, memory=nbytes / soc.bandwidth,
                   detail=f"{input_format} {w}x{h} -> fp16 NC1HWC0", shape=tuple(shape))
    lc.time = lc.memory + soc.op_overhead
    return lc


def input_transdata(name: str, shape, soc: Soc) -> LayerCost:
    """An fp32 NCHW input without AIPP: cast and TransData to fp16 NC1HWC0 (a copy)."""
    nbytes = elements(shape) * 4 + tensor_bytes(shape, soc.c0("fp16"), 2)
    lc = LayerCost(f"TransData({name})", "TransData", "Vector", 0.0, "layout", bytes=nbytes,
                   memory=nbytes / soc.bandwidth, detail="NCHW fp32 -> NC1HWC0 fp16", shape=tuple(shape))
    lc.time = lc.memory + soc.op_overhead
    return lc


def resolve_aipp(value: str | None) -> str | None:
    """--aipp: an AIPP config file (its first op's input_format), an input format name, or none/None."""
    if value is None or value.lower() == "none":
        return None
    if value.endswith(".cfg") or Path(value).is_file():
        from ...aipp import load_config

        op = load_config(value).op_for_input(0)
        return None if op is None else str(op.get("input_format"))
    if value.upper() not in AIPP_BYTES_PER_PIXEL:
        raise MatteconvError(f"--aipp {value!r}: give an AIPP .cfg, none, or one of {', '.join(AIPP_BYTES_PER_PIXEL)}")
    return value.upper()


def precisions_for(precision: str, quant_record: str | Path | None) -> Precisions:
    """--precision / --quant-record -> Precisions. A record implies int8 for the layers it quantized."""
    if precision not in ("fp16", "int8"):
        raise MatteconvError(f"--precision {precision!r}: choose fp16 or int8")
    if quant_record is None:
        return Precisions(precision)
    from ...int8.record import load_record

    rec = load_record(quant_record)
    return Precisions("int8", {r.name for r in rec.quantized}, {r.name: r.skip for r in rec.skipped})


def profile_graph(graph: Graph, soc: Soc, precisions: Precisions = Precisions(), output_type: str | None = None,
                  aipp: str | None = "YUV420SP_U8") -> Profile:
    """Cost every layer of `graph`. output_type: fp16 | fp32 | None (the model's declared output dtype, which
    atc keeps unless --output_type). aipp: the AIPP input format on the first 4-D input, or None (fp32 input
    with a TransData)."""
    fused = fused_layers(graph)
    names = graph.by_name
    costs, index = [], {}
    for la in graph.layers:
        if la.name in fused:
            costs.append(LayerCost(la.name, la.type, "fused", 0.0, "fused", fused_into=fused[la.name],
                                   detail=f"fused into {fused[la.name]}", shape=la.out_shape))
            if la.kind == "eltwise":  # the fused add reads its other input in the head's kernel
                head = costs[index[fused[la.name]]]
                extra = sum(tensor_bytes(s, soc.c0("fp16"), 2) for t, s in zip(la.inputs, la.in_shapes)
                            if graph.producer.get(t) not in fused and graph.producer.get(t) != head.name)
                head.bytes += extra
                head.memory += extra / soc.bandwidth
                head.time = max(head.compute, head.memory) + soc.op_overhead
                if head.bound in ("compute", "memory") and head.memory > head.compute:
                    head.bound = "memory"
                head.detail += "; + fused add"
            continue
        index[la.name] = len(costs)
        prec = precisions.of(la)
        src = graph.producer.get(la.inputs[0]) if la.inputs else None
        root = names[fused.get(src, src)] if src in names else None
        requant = prec == "int8" and root is not None and precisions.of(root) == "int8"
        costs.append(layer_cost(la, soc, prec, quantize_input=not requant))
    extras = []
    first = True
    for name, shape in graph.inputs.items():
        if shape is None or len(shape) != 4:
            continue
        if aipp and first:
            extras.append(aipp_cost(name, shape, aipp, soc))
        else:
            extras.append(input_transdata(name, shape, soc))
        first = False
    out_type = output_type
    for name, shape in graph.outputs.items():
        dtype = {"fp16": "float16", "fp32": "float32"}.get(output_type or "", graph.output_dtypes.get(name, "float32"))
        if dtype not in ("float16", "float32"):
            dtype = "float32"
        out_type = out_type or ("fp32" if dtype == "float32" else "fp16")
        extras.append(output_transdata(name, shape, dtype, soc))
    prof = Profile(str(graph.path), soc.name, precisions.default, graph.input_hw(), costs, extras,
                   out_type or "fp32", aipp, soc.fitted.to_dict())
    from .speed import speed_warnings

    prof.warnings = speed_warnings(graph, prof, soc, precisions)
    return prof


def profile_model(path: str | Path, soc: str = "Ascend310", precision: str = "fp16",
                  quant_record: str | Path | None = None, output_type: str | None = None,
                  aipp: str | None = "YUV420SP_U8", size: tuple[int, int] | None = None) -> Profile:
    """Load an ONNX or Caffe model and profile it (at `size` = (H, W) if given, see Graph.scaled)."""
    graph = load_graph(path)
    if size is not None:
        graph = graph.scaled(*size)
    return profile_graph(graph, get_soc(soc), precisions_for(precision, quant_record), output_type, aipp)


@dataclass
class FpsAnswer:
    fps: float
    size: tuple[int, int] | None  # (H, W), None if even the smallest does not hold
    total: float | None
    tried: list  # [(h, w, total_s)]
    multiple: int

    def to_dict(self) -> dict:
        return {"target_fps": self.fps, "size_hw": list(self.size) if self.size else None,
                "total_ms": round(self.total * 1e3, 4) if self.total else None, "multiple": self.multiple,
                "tried": [[h, w, round(t * 1e3, 4)] for h, w, t in self.tried]}


def largest_size_for_fps(graph: Graph, soc: Soc, fps: float, precisions: Precisions = Precisions(),
                         output_type: str | None = None, aipp: str | None = "YUV420SP_U8", multiple: int = 32,
                         max_side: int = 4096) -> FpsAnswer:
    """The largest input (H, W), both multiples of `multiple`, at the model's aspect ratio, whose predicted time
    holds `fps` (the graph scaled as Graph.scaled does). Time grows with size, so a binary search over H."""
    if fps <= 0:
        raise MatteconvError(f"--fps {fps}: give a positive frame rate")
    h0, w0 = graph.input_hw()
    budget = 1.0 / fps
    tried = []

    def at(k: int):
        h = k * multiple
        w = max(multiple, round(h * w0 / h0 / multiple) * multiple)
        t = profile_graph(graph.scaled(h, w), soc, precisions, output_type, aipp).total
        tried.append((h, w, t))
        return h, w, t

    lo, hi = 1, max(1, max_side * min(1, h0 / w0) // multiple)
    h, w, t = at(lo)
    if t > budget:
        return FpsAnswer(fps, None, None, tried, multiple)
    best = (h, w, t)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        h, w, t = at(mid)
        if t <= budget:
            lo, best = mid, (h, w, t)
        else:
            hi = mid - 1
    return FpsAnswer(fps, best[:2], best[2], sorted(tried), multiple)


def predicted_line(model: str | Path, aipp: str | Path | None, soc: str = "Ascend310",
                   precision_mode: str | None = None, output_type: str | None = None) -> str | None:
    """One line for `matteconv om`: the predicted device time of the .om an ONNX model becomes (the model's
    output type, atc's default precision), or None when there is no prediction to make (a Caffe model, whose
    shapes need pycaffe; a SoC or precision mode the cost model does not cover; a model it cannot read)."""
    if Path(model).suffix != ".onnx" or precision_mode not in (None, "force_fp16", "allow_fp32_to_fp16"):
        return None
    try:
        prof = profile_model(model, soc, output_type=output_type, aipp=resolve_aipp(str(aipp)) if aipp else None)
    except (MatteconvError, ValueError):
        return None
    slow = ", ".join(sorted({w.rule for w in prof.warnings if w.cost > 0.05 * prof.total}))
    return (f"predicted on {soc}: {prof.total * 1e3:.1f} ms = {prof.fps:.0f} fps (matteconv profile "
            f"{Path(model).name} for the breakdown{'; costs most: ' + slow if slow else ''})")
