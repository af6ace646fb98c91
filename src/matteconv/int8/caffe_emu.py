"""The INT8 device model (rules.DEVICE_MODEL_INT8) applied to a Caffe model (prototxt + caffemodel), in pycaffe:
the predicted INT8 .om of a Caffe `ascend` export.

Built on the fp16 Caffe emulator (fp16.caffe_emu: every top rounded to fp16, Power in float16); each layer the
quantization record keeps INT8 (Convolution, Deconvolution, InnerProduct) reads its bottom quantize-dequantized
with the record's scale_d and offset, computes with the ARQ INT8 weights times scale_w and the deploy model's
INT32 bias (emulate.deploy_params, shared with the ONNX emulator), in float32 (the INT32 sum dequantised: exact
while it stays below 2^24), and its top is rounded to fp16 (AscendDequant writes fp16). The pycaffe side is
int8/caffe_worker.py. Like the switchable ONNX emulator, run(x, int8) picks which recorded layers are INT8, so one
worker serves the automatic skip and any choice of skipped layers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MatteconvError
from ..export.caffe.runner import CaffeBackend, CaffeWorker, split_input
from ..fp16.caffe_emu import Fp16CaffeBackend
from .emulate import deploy_params
from .record import QuantRecord

WORKER = Path(__file__).with_name("caffe_worker.py")


def caffe_params(worker: CaffeWorker, layers: list[str]) -> dict[str, list[np.ndarray]]:
    """The float32 parameters of `layers` as the caffemodel holds them (weight, then bias if any)."""
    return worker._call({"op": "params", "layers": list(layers)})["params"]


class CaffeCalibrator(CaffeBackend):
    """The float32 Caffe net (what AMCT calibrates on), reporting the input of named layers."""

    name = "caffe-calibration"
    worker_script = WORKER

    def layer_inputs(self, layers: list[str]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            feeds = split_input(x, self.inputs)
            return self.worker._call({"op": "layer_inputs", "inputs": feeds, "layers": list(layers)})["inputs"]

        return run


class Int8CaffeBackend(Fp16CaffeBackend):
    """Backend protocol: a Caffe artifact under the INT8 device model with a quantization record. run(x) computes
    every recorded INT8 layer in INT8; run(x, int8) only the layers of the set `int8` (the others fp16)."""

    name = "caffe-int8"
    worker_script = WORKER

    def __init__(self, prototxt: str | Path, record: QuantRecord, caffemodel: str | Path | None = None):
        super().__init__(prototxt, caffemodel)
        self.record = record
        self.layers = [r.name for r in record.quantized]
        have = {name for name, _ in self.worker.info["layers"]}
        missing = [n for n in self.layers if n not in have]
        if missing:
            self.close()
            raise MatteconvError(f"quantization record names layers the model does not have: "
                                 f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} (made from "
                                 f"{record.model})")
        weights = caffe_params(self.worker, self.layers)
        layers = {}
        for r in record.quantized:
            ps = weights[r.name]
            w, b = deploy_params(ps[0], ps[1] if len(ps) > 1 else None, r)
            layers[r.name] = (float(r.act_scale), int(r.act_offset), [w] + ([b.reshape(ps[1].shape)]
                                                                           if b is not None else []))
        self.worker._call({"op": "set_int8", "layers": layers})
        self._int8 = set(self.layers)

    def run(self, x: np.ndarray, int8: set[str] | None = None) -> np.ndarray:
        self._int8 = set(self.layers) if int8 is None else set(int8)
        return super().run(x)

    def _forward(self, feeds: dict[str, np.ndarray], blobs: tuple[str, ...]) -> dict:
        return self.worker._call({"op": "run_int8", "inputs": feeds, "blobs": list(blobs), "power": self.powers,
                                  "int8": sorted(self._int8)})
