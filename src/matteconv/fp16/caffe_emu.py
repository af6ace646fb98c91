"""A Caffe model (prototxt + caffemodel) as the device runs it: pycaffe layer by layer in the child worker
(caffe_worker.py), tops rounded to fp16 between layers, Power in numpy float16 (device.DEVICE_MODEL)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..export.caffe.runner import CaffeBackend

WORKER = Path(__file__).with_name("caffe_worker.py")


def power_params(prototxt: str | Path) -> dict[str, tuple[float, float, float]]:
    """Power layer name -> (power, scale, shift): pycaffe does not expose layer parameters."""
    from ..export.caffe.writer import read_prototxt

    return {layer.name: (layer.power_param.power, layer.power_param.scale, layer.power_param.shift)
            for layer in read_prototxt(prototxt).layer if layer.type == "Power"}


class Fp16CaffeBackend(CaffeBackend):
    """Backend protocol: a Caffe artifact under the device model (the `fp16` stage of a Caffe artifact)."""

    name = "caffe-fp16"
    worker_script = WORKER

    def __init__(self, prototxt: str | Path, caffemodel: str | Path | None = None):
        super().__init__(prototxt, caffemodel)
        self.powers = power_params(self.path)

    def _forward(self, feeds: dict[str, np.ndarray], blobs: tuple[str, ...]) -> dict:
        return self.worker._call({"op": "run_fp16", "inputs": feeds, "blobs": list(blobs), "power": self.powers})
