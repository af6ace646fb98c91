"""An `.om` as the device would run it, emulated on the host: the model it was built from behind our AIPP emulator.

`matteconv om` leaves OUT.build.json beside OUT.om (atc's argv, the source model's inputs, the AIPP config).
From it we know what the device takes: a static YUV420SP AIPP input is exactly W*H*3/2 uint8 bytes (RGB888
W*H*3), a plain input keeps the model's dtype (float32 unless atc got --input_fp16_nodes), the output keeps
the last layer's dtype unless --output_type (docs/design.md section 8; device-app-apis.md section 3). The stand-in
`hilens`, `acl` and `ais_bench` modules and the parity check all run the .om through `DeviceModel`, so the
only thing a comparison with `matteconv matte` can find is the app itself.

Numbers come from `make_engine`: onnxruntime (or pycaffe) in fp32 today. It is the one seam where an fp16
device emulator plugs in.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MatteconvError

PRECISIONS = ("fp32",)
PRECISION_ENV = "MATTECONV_DEVICE_PRECISION"


@dataclass
class DeviceTensor:
    name: str
    shape: tuple[int, ...]  # the model's NCHW shape (for an AIPP input: the shape AIPP produces)
    dtype: str  # what the device takes or gives: uint8 (AIPP), float32, float16
    nbytes: int
    aipp: object | None = None  # the AippOp feeding this input, if any
    layout: str = "float"  # nv21 | nv12 | rgb | bgr | float (what the app must send)
    color_range: str = "video"


@dataclass
class BuildRecord:
    """OUT.build.json, read for deployment."""

    om: Path
    path: Path
    source: Path | None
    inputs: list[DeviceTensor]
    outputs: list[DeviceTensor]
    aipp_text: str | None
    soc_version: str = ""
    info: dict = field(default_factory=dict, repr=False)

    @property
    def model_hw(self) -> tuple[int, int]:
        return tuple(self.inputs[0].shape[2:4])

    @property
    def in_channels(self) -> int:
        return sum(int(t.shape[1]) for t in self.inputs)


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def _layout(op) -> tuple[str, str]:
    """(layout the app sends, colour range) for an aipp_op, as `aipp.emulate.encode_for` encodes it."""
    fmt = op.input_format
    swap = bool(op.get("rbuv_swap_switch", False))
    if fmt == "YUV420SP_U8":
        return ("nv21" if swap else "nv12"), ("video" if int(op.get("input_bias_0", 16)) >= 16 else "full")
    if fmt == "RGB888_U8":
        return ("bgr" if swap else "rgb"), "video"
    raise MatteconvError(f"AIPP input format {fmt} is not one the app can produce (YUV420SP_U8 or RGB888_U8)")


def resolve_source(record_path: Path, info: dict) -> Path | None:
    """The model the .om was built from: the path deploy recorded, else atc's --model (as given, or beside the
    record)."""
    if info.get("source_model") and Path(info["source_model"]).is_file():
        return Path(info["source_model"])
    model = _flags(info.get("argv", [])).get("model")
    if not model:
        return None
    for cand in (Path(model), record_path.parent / model, record_path.parent / Path(model).name):
        if cand.is_file():
            return cand.resolve()
    return Path(model)


def read_record(om: str | Path) -> BuildRecord:
    """Parse OUT.build.json beside OUT.om into what the device takes and gives."""
    from ..aipp import parse_config
    from ..ascend.command import parse_input_shape

    om = Path(om)
    path = om.with_suffix(".build.json")
    if not path.is_file():
        raise MatteconvError(f"{om}: no {path.name} beside it (build the .om with `matteconv om`, which writes it)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MatteconvError(f"{path}: not a readable build record ({e})") from None
    flags = _flags(info.get("argv", []))
    shapes = parse_input_shape(flags["input_shape"]) if flags.get("input_shape") else \
        [(n, tuple(s)) for n, s in info.get("model_inputs") or []]
    if not shapes or any(len(s) != 4 or min(s) <= 0 for _, s in shapes):
        raise MatteconvError(f"{path}: model inputs {shapes} are not fixed NCHW shapes")
    text = info.get("aipp_config")
    cfg = parse_config(text, str(path)) if text else None
    fp16_nodes = set(filter(None, flags.get("input_fp16_nodes", "").split(";")))
    inputs = []
    for rank, (name, shape) in enumerate(shapes):
        op = cfg.op_for_input(rank) if cfg else None
        if op is not None:
            if op.get("aipp_mode") != "static":
                raise MatteconvError(f"{path}: input {name} has {op.get('aipp_mode')} AIPP; the app feeds static AIPP")
            if op.get("crop", False) or op.src_hw(tuple(shape[2:])) != tuple(shape[2:]):
                raise MatteconvError(f"{path}: the AIPP of input {name} crops or takes another size than the model's "
                                     f"{shape[3]}x{shape[2]}; the app sends model-size frames")
            layout, rng = _layout(op)
            per_pixel = 1.5 if op.input_format == "YUV420SP_U8" else 3
            nbytes = int(shape[0] * shape[2] * shape[3] * per_pixel)
            inputs.append(DeviceTensor(name, tuple(shape), "uint8", nbytes, op, layout, rng))
        else:
            dtype = "float16" if name in fp16_nodes else "float32"
            inputs.append(DeviceTensor(name, tuple(shape), dtype, int(np.prod(shape)) * np.dtype(dtype).itemsize))
    out_type = flags.get("output_type", "").upper()
    out_dtype = {"FP16": "float16", "UINT8": "uint8"}.get(out_type, "float32")
    n, _, h, w = inputs[0].shape
    outputs = [DeviceTensor("alpha", (n, 1, h, w), out_dtype, n * h * w * np.dtype(out_dtype).itemsize)]
    return BuildRecord(om, path, resolve_source(path, info), inputs, outputs, text, info.get("soc_version", ""), info)


def make_engine(source: Path, precision: str = "fp32", threads: int = 2):
    """The numbers behind the emulated device: a `matteconv.backends` Backend on the source model.
    fp32 (onnxruntime / pycaffe) today; an fp16 device emulator plugs in here, by precision name."""
    from ..backends import open_backend

    if precision not in PRECISIONS:
        raise MatteconvError(f"device precision {precision!r} is not emulated here (choose from "
                             f"{', '.join(PRECISIONS)}); an fp16 engine plugs in at matteconv.deploy.device.make_engine")
    return open_backend(source, threads)


class DeviceModel:
    """Run raw device inputs (bytes as the board sends them) through the emulated AIPP and the source model."""

    def __init__(self, om: str | Path, precision: str | None = None, threads: int = 2):
        self.record = read_record(om)
        source = self.record.source
        if source is None or not source.is_file():
            raise MatteconvError(f"{om}: built from {source}, which is not here to emulate the device with")
        self.precision = precision or os.environ.get(PRECISION_ENV, "fp32")
        self.engine = make_engine(source, self.precision, threads)
        self.inputs, self.outputs = self.record.inputs, self.record.outputs

    def decode(self, k: int, raw: np.ndarray) -> np.ndarray:
        """Input k as bytes -> float32 NCHW as the first layer sees it (through AIPP when it has one)."""
        from ..aipp import emulate

        spec = self.inputs[k]
        data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
        if data.size != spec.nbytes:
            raise MatteconvError(f"input {k} ({spec.name}): {data.size} bytes, the model takes {spec.nbytes}")
        if spec.aipp is not None:
            return emulate(spec.aipp, data, fp16=self.precision == "fp16", size=tuple(spec.shape[2:]))
        return data.view(np.dtype(spec.dtype)).reshape(spec.shape).astype(np.float32)

    def run(self, raw_inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(raw_inputs) != len(self.inputs):
            raise MatteconvError(f"{len(raw_inputs)} inputs for a model with {len(self.inputs)}")
        x = np.concatenate([self.decode(k, r) for k, r in enumerate(raw_inputs)], axis=1)
        alpha = np.asarray(self.engine.run(x), np.float32)
        out = self.outputs[0]
        return [alpha.reshape(out.shape).astype(out.dtype)]


class EmulatedOmBackend:
    """A `matteconv.backends` Backend for `matteconv matte`: its normalised tensor goes back to the uint8 frame,
    is encoded as the .om's first input expects (`aipp.emulate.encode_for`) and run by `DeviceModel`: the
    reference the generated app is compared with."""

    name = "om (emulated device)"

    def __init__(self, om: str | Path, precision: str | None = None, threads: int = 2):
        from ..preprocess import MEAN, STD

        self.device = DeviceModel(om, precision, threads)
        self.in_channels = self.device.record.in_channels
        self.size = self.device.record.model_hw
        self._mean, self._std = MEAN, STD

    def run(self, x: np.ndarray) -> np.ndarray:
        from ..aipp.emulate import encode_for

        first = self.device.inputs[0]
        image = x[:, :3]
        if first.aipp is not None:
            frame = np.clip(np.rint(image[0].transpose(1, 2, 0) * self._std + self._mean), 0, 255).astype(np.uint8)
            raw = [encode_for(first.aipp, frame)]
        else:
            raw = [np.ascontiguousarray(x if len(self.device.inputs) == 1 else image, np.dtype(first.dtype))]
        if len(self.device.inputs) == 2:
            raw.append(np.ascontiguousarray(x[:, 3:4], np.dtype(self.device.inputs[1].dtype)))
        return self.device.run(raw)[0].astype(np.float32)
