"""Rules that cost speed on the device, each as a warning with its predicted cost and the fix.

- fp32 output: atc keeps the model's fp32 output type and converts the fp16 result on the slow path (ICNet:
  558 ms against 5.5 ms with `--output_type=FP16`, hardware.ICNET). Fix: `atc --output_type=FP16` and an app
  that reads fp16.
- AvgPool on the AI CPU: window over 256 elements or stride over 63 (atc W11001, FastSCNN README; cost.py).
  MODNet's SE global pool is such a pool above 512x512 (a 1/32 map over 16x16). Fix: a cascade of average pools
  each within the limit (exact when the windows divide the map: the mean of equal-sized means), which
  `matteconv export` writes for a global pool at the size it exports (pass global-pool-cascade), so the rule
  stays silent on an export at its own size and fires on a file profiled at a larger `--size`.
- Bilinear Resize on the AI CPU: a side over 2048 (CANN ONNX Resize page). Fix: keep each side within 2048
  (resize in the app, or in two steps).
- Channels off the Cube fractal: what the Cube layers spend (compute and NC1HWC0 bytes) on channels padded to
  16 (32 INT8), one warning per model when it is over 1% of the total; and Concat/Slice at unaligned channel
  boundaries that repack C0 blocks (each over 1% of the total). Fix: channel counts that are multiples of the
  fractal (zero-padded weights align the layout for free: the Cube computes the padding anyway).
- Runtime-statistics norms (InstanceNorm, MVN, LayerNorm): three passes and three kernels each; Huawei's Ascend
  310 operator advice (GUIDE: "算子使用建议") recommends BatchNorm with trained statistics over norms that compute
  their parameters online, and warns against vector ops between convolutions; it also asks for Conv and Concat
  channels in multiples of 16 (32 quantized). Fix: a
  normalisation with fixed statistics (BatchNorm folded into the convolution) where the model allows it.
- Ops with no AI Core kernel known here: costed on the AI CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .cost import avgpool_on_aicpu, resize_on_aicpu
from .graph import Graph, Layer
from ..rules import CAFFE_LIST, ONNX_LIST
from .hardware import ICNET, Soc

FASTSCNN = "Ascend/ModelZoo-PyTorch ACL_PyTorch/contrib/cv/segmentation/FastSCNN/README.md (atc W11001)"
RESIZE_PAGE = "CANN ONNX operator Resize (atlasoxol_09_0131): bilinear H or W > 2048 runs on the AI CPU"
GUIDE = "https://support.huawei.com/enterprise/zh/doc/EDOC1100107784/62d2964"  # Ascend 310 "算子使用建议"
TUNING = (f"{GUIDE} (Ascend 310 operator advice: BatchNorm with trained statistics recommended, norms that compute "
          "their parameters online not recommended; vector ops between convolutions cost performance)")
FRACTAL = (f"{GUIDE} (Conv and Concat channels in multiples of 16, 32 when quantized); Cube fractal 16x16x16 "
           "(hardware.GE_STUB)")
MIN_SHARE = 0.01  # a padding warning needs at least this share of the total


@dataclass
class SpeedWarning:
    rule: str
    layer: str
    message: str
    cost: float  # seconds the rule costs (what the fix would save, as predicted)
    fix: str
    source: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cost_ms"] = round(self.cost * 1e3, 4)
        return d

    def line(self) -> str:
        return f"{self.rule}: {self.layer}: {self.message} (~{self.cost * 1e3:.3g} ms); fix: {self.fix}"


def _core_time(layer: Layer, soc: Soc) -> float:
    """What the layer would cost on its AI Core kernel."""
    from .cost import layer_cost

    return layer_cost(layer, soc, aicpu_fallback=False).time


def speed_warnings(graph: Graph, prof, soc: Soc, precisions) -> list[SpeedWarning]:
    from .walk import output_transdata

    out: list[SpeedWarning] = []
    costs = {c.name: c for c in prof.layers}
    total = prof.total
    for x in prof.extras:
        if x.type == "TransData" and x.engine == "AI CPU":
            name = x.name[len("TransData("):-1]
            fast = output_transdata(name, graph.outputs[name], "float16", soc).time
            out.append(SpeedWarning(
                "fp32-output", name, f"output is fp32: atc converts it from fp16 on the slow path "
                f"({x.time * 1e3:.3g} ms against {fast * 1e3:.3g} ms for fp16)", x.time - fast,
                "matteconv om --output-type fp16 (atc --output_type=FP16); the app then reads fp16", ICNET))
    for la in graph.layers:
        c = costs[la.name]
        why = avgpool_on_aicpu(la)
        if why:
            saved = c.time - _core_time(la, soc)
            out.append(SpeedWarning(
                "avgpool-aicpu", la.name, f"{why}: runs on the AI CPU", saved,
                "a cascade of average pools each within 256 elements and stride 63 (exact when the windows "
                "divide the map; `matteconv export` at this input size writes it for a global pool: pass "
                "global-pool-cascade), or a smaller input", FASTSCNN))
        why = resize_on_aicpu(la)
        if why:
            saved = c.time - _core_time(la, soc)
            out.append(SpeedWarning("resize-aicpu", la.name, f"{why}: runs on the AI CPU", saved,
                                    "keep each side within 2048 (resize in the app, or in two steps)", RESIZE_PAGE))
        if la.kind == "aicpu" and c.engine == "AI CPU":
            out.append(SpeedWarning("aicpu-op", la.name, f"{la.type} has no AI Core kernel known to this model: "
                                    "costed on the AI CPU", c.time, "replace it with supported ops",
                                    ONNX_LIST if graph.framework == "onnx" else CAFFE_LIST))
        if c.bound == "layout" and la.kind in ("concat", "slice") and c.time > MIN_SHARE * total:
            out.append(SpeedWarning("unaligned-layout", la.name, c.detail, c.time,
                                    "channel counts that are multiples of 16 (zero-padded weights make the "
                                    "boundaries aligned at no Cube cost)", FRACTAL))
    padded = sorted((c for c in prof.layers if c.channel_padding > 0), key=lambda c: -c.channel_padding)
    waste = sum(c.channel_padding for c in padded)
    if padded and waste > MIN_SHARE * total:
        k = soc.c0(precisions.default)
        worst = "; ".join(f"{c.name} ({c.detail.split(';')[0]}, {c.channel_padding * 1e3:.3g} ms)" for c in padded[:3])
        out.append(SpeedWarning(
            "channel-padding", f"{len(padded)} Cube layers",
            f"channel counts off the {k}-channel C0 block / Cube fractal cost compute and bytes; most: {worst}",
            waste, f"channel counts that are multiples of {k} where the model allows (zero-padded weights cost the "
                   "same on the Cube but align the layout for Concat/Slice)", FRACTAL))
    norms = [(la, costs[la.name]) for la in graph.layers if la.kind == "norm"]
    if norms:
        types = sorted({la.type for la, _ in norms})
        slowest = max(norms, key=lambda lc: lc[1].time)[0].name
        out.append(SpeedWarning(
            "runtime-stat-norm", f"{len(norms)} layers (slowest {slowest})",
            f"{'/'.join(types)} compute statistics at run time: 3 passes and 3 kernels each",
            sum(c.time for _, c in norms),
            "fixed statistics (BatchNorm folded into the convolution) where the model allows it (needs retraining)",
            TUNING))
    return out
