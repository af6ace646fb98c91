"""The quantization record: what `matteconv quantize` decided for every layer AMCT may quantize, as JSON.

Per layer: its op, MACs, the ARQ weight scales (per output channel, or one), the IFMR activation scale and offset
with the search's details, and, for a layer that stays fp16, why (an AMCT restriction, a layer matteconv does not
emulate, or the automatic skip). The INT8 emulators (emulate.py) read it; so do `verify --int8` and the `om`
stage of a model built from an AMCT deploy model.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MatteconvError

FORMAT = 1
SUFFIX = ".quant.json"


@dataclass
class LayerRecord:
    name: str
    op: str
    macs: int
    weight_scales: list[float] = field(default_factory=list)
    axis: int = 0  # output-channel axis of the weight
    act_scale: float = 1.0
    act_offset: int = 0
    calibration: dict = field(default_factory=dict)  # IFMR: clip_min_init, clip_max_init, factor
    skip: str | None = None  # why it stays fp16; None = INT8


@dataclass
class QuantRecord:
    model: str
    model_sha256: str
    framework: str  # onnx | caffe
    activation_offset: bool
    ifmr: dict
    inputs: list[str]  # calibration inputs
    layers: list[LayerRecord]
    total_macs: int
    format: int = FORMAT

    @property
    def quantized(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.skip is None]

    @property
    def skipped(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.skip is not None]

    def int8_share(self) -> float:
        """Share of the model's conv/matmul MACs that run in INT8."""
        return sum(r.macs for r in self.quantized) / self.total_macs if self.total_macs else 0.0

    def with_skips(self, names, reason: str) -> "QuantRecord":
        """A copy with these layers kept fp16 for `reason` (layers already skipped keep their reason)."""
        out = copy.deepcopy(self)
        names = set(names)
        for r in out.layers:
            if r.name in names and r.skip is None:
                r.skip = reason
        return out

    def only(self, names) -> "QuantRecord":
        """A copy in which only these layers are INT8 (the others skipped: 'not selected')."""
        names = set(names)
        return self.with_skips([r.name for r in self.layers if r.name not in names], "not selected")

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        from ..fileio import atomic_path, json_text

        with atomic_path(Path(path)) as tmp:
            tmp.write_text(json_text(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_record(path: str | Path) -> QuantRecord:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        layers = [LayerRecord(**r) for r in d.pop("layers")]
        rec = QuantRecord(layers=layers, **d)
    except FileNotFoundError:
        raise MatteconvError(f"{path}: quantization record not found") from None
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise MatteconvError(f"{path}: not a matteconv quantization record ({type(e).__name__}: {e})") from None
    if rec.format != FORMAT:
        raise MatteconvError(f"{path}: record format {rec.format}, this matteconv reads {FORMAT}")
    return rec
