"""Our ONNX export in the runtimes a user checks it with: OpenCV DNN 4.x (what boards ship; installed beside the
venv by scripts/install.sh, run in a child process), the venv's OpenCV DNN 5.x, and OpenVINO on CPU with f32
inference precision (without the hint it silently uses bf16 on AMX CPUs). Each must match the float64 golden
alphas on the golden photos within the tolerance the golden manifest gives the onnx stage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import GOLDEN_PHOTOS
from matteconv.verify.golden import load_golden, model_input

# The random-weight reference (golden/photos until trained checkpoints replace it) amplifies fp32 rounding ~600x
# (docs/design.md section 8). On its `chelsea` photo, measured here: onnxruntime 3.1e-4 max, OpenCV 5.0 within 1e-3,
# OpenVINO f32 1.16e-3 max / 7.1e-5 mean, OpenCV 4.14 1.41e-2 / 4.7e-4 (Winograd on or off). These two are
# expected to fail for that checkpoint only (strict: if they pass, the marker must go); any other golden set
# must pass.
RANDOM_REFERENCE = "de5ad50f8c046ebc0776a7891b47f4fdc0a959bf23951f0d694aed9ece23c362"
NOISY_ON_RANDOM = pytest.mark.xfail(
    json.loads((GOLDEN_PHOTOS / "manifest.json").read_text())["checkpoint"]["weights_sha256"] == RANDOM_REFERENCE,
    reason="fp32 differences amplified by the random-weight reference exceed 1e-3 on chelsea", strict=True)
OPENCV4 = Path(sys.prefix) / "opencv4"  # scripts/install.sh: pip install --target $VENV/opencv4 "opencv<5"
CHILD = Path(__file__).parent / "interop" / "opencv_dnn.py"


@pytest.fixture(scope="module")
def golden(ref3_onnx):
    """Inputs and float64 alphas of the golden photos, checked to belong to the model exported in ref3_onnx."""
    gset = load_golden(GOLDEN_PHOTOS)
    meta = {p.key: p.value for p in onnx.load(str(ref3_onnx), load_external_data=False).metadata_props}
    assert meta["weights_sha256"] == gset.manifest["checkpoint"]["weights_sha256"]
    assert meta["input_size"] == "x".join(map(str, gset.size))
    inputs = {it.name: model_input(f, None) for it, f in zip(gset.items, gset.frames())}
    return inputs, {it.name: it.golden_alpha() for it in gset.items}, gset.tolerance("onnx")


def judge(outputs: dict, golden) -> float:
    _, alphas, tol = golden
    assert set(outputs) == set(alphas)
    worst = 0.0
    for name, alpha in alphas.items():
        d = np.abs(np.asarray(outputs[name], np.float64).reshape(alpha.shape) - alpha)
        assert d.max() <= tol["max_abs"] and d.mean() <= tol["mean_abs"], (name, d.max(), d.mean())
        worst = max(worst, float(d.max()))
    return worst


@pytest.mark.slow  # end to end: tier 2 (issue 38)
@NOISY_ON_RANDOM
def test_opencv4_dnn(ref3_onnx, golden, tmp_path):
    assert (OPENCV4 / "cv2").is_dir(), f"OpenCV 4.x missing in {OPENCV4}: run `make install`"
    np.savez(tmp_path / "in.npz", **golden[0])
    env = dict(os.environ, PYTHONPATH=str(OPENCV4))
    proc = subprocess.run([sys.executable, str(CHILD), str(ref3_onnx), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "out.npz") as z:
        assert str(z["cv2_version"]).startswith("4."), str(z["cv2_version"])
        outputs = {k: z[k] for k in z.files if k != "cv2_version"}
    assert judge(outputs, golden) > 0  # fp32, never bit-equal to float64


def test_opencv5_dnn(ref3_onnx, golden):
    import cv2

    assert cv2.__version__.startswith("5."), cv2.__version__
    net = cv2.dnn.readNetFromONNX(str(ref3_onnx))
    outputs = {}
    for name, x in golden[0].items():
        net.setInput(x)
        outputs[name] = net.forward()
    assert judge(outputs, golden) > 0


@pytest.mark.slow  # end to end: tier 2 (issue 38)
@NOISY_ON_RANDOM
def test_openvino_f32(ref3_onnx, golden):
    import openvino as ov

    compiled = ov.Core().compile_model(str(ref3_onnx), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    out = compiled.output(0)
    outputs = {name: compiled([x])[out] for name, x in golden[0].items()}
    assert judge(outputs, golden) > 0
