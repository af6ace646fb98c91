"""The temporal reference on blank frames (issue 17 item 5, docs/hard-frames.md): measured and pinned, not the goal.

golden/hard/clip is empty, the figure enters, stays, leaves, and the frame stays empty. Run as an app runs it (each
frame fed the model's own previous alpha, zeros first), PyTorch fp32 and the split-input ONNX export agree at the
fp32 floor on every frame, the empty ones included, and the recurrence does not drift. What they agree on is not
"alpha back to 0": the synthetic-only reference calls ~45% of an empty frame foreground, before the figure enters
and after it leaves alike. This test pins that, so a retrained reference (blank images in training) changes it
knowingly."""
from __future__ import annotations

import numpy as np
import pytest

from matteconv.verify.golden import FP32

EMPTY_AFTER = ("06_empty", "07_empty", "08_empty")


@pytest.mark.slow
def test_torch_and_onnx_agree_on_blank_frames_and_the_reference_does_not_return_to_zero(ref4_model, tmp_path):
    from conftest import ROOT

    from matteconv.backends import OnnxBackend, TorchBackend
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint
    from matteconv.reference import save_reference
    from matteconv.verify.golden import load_golden, model_input

    gset = load_golden(ROOT / "golden" / "hard" / "clip")
    ckpt = tmp_path / "ref4.ckpt"
    save_reference(ref4_model, ckpt)
    onnx_path = tmp_path / "ref4.onnx"
    export_onnx(load_checkpoint(ckpt), onnx_path, gset.size, split_inputs=True)
    runs = {"torch": TorchBackend(load_checkpoint(ckpt).model), "onnx": OnnxBackend(onnx_path)}
    prev = {k: np.zeros(gset.size, np.float32) for k in runs}
    means: dict[str, dict[str, float]] = {k: {} for k in runs}
    for it, frame in zip(gset.items, gset.frames()):
        out = {}
        for k, backend in runs.items():
            out[k] = np.asarray(backend.run(model_input(frame, prev[k])), np.float64).reshape(gset.size)
            prev[k] = out[k].astype(np.float32)  # the app's feedback: its own alpha, not the golden one
            means[k][it.name] = float(out[k].mean())
        d = np.abs(out["torch"] - out["onnx"])
        # two fp32 runtimes (kernels, summation order): within the fp32 stage tolerance, also after 8 recurrences
        assert d.max() <= FP32["max_abs"] and d.mean() <= FP32["mean_abs"], (it.name, d.max(), d.mean())
    m = means["torch"]
    # measured 2026-11-30 (288x512): 0.4296 on 00_empty, 0.4485 / 0.4509 / 0.4500 after the figure left; steady
    # (no drift over three empty frames) and nowhere near 0
    assert m["00_empty"] == pytest.approx(0.4296, abs=5e-3)
    for name in EMPTY_AFTER:
        assert m[name] == pytest.approx(0.450, abs=5e-3), m
        assert abs(means["onnx"][name] - m[name]) < 1e-5
    assert max(m[n] for n in EMPTY_AFTER) - min(m[n] for n in EMPTY_AFTER) < 5e-3


@pytest.mark.slow
def test_simulated_device_app_on_blank_frames(ref4_ckpt, tmp_path):
    """The generated app (acl runtime, NV21 through the emulated AIPP, the app's own feedback and reset rules) on
    the same clip. Its alpha is read back from two runs that differ only in the background: a composite
    out = a*frame + (1-a)*bg gives white - black = (1-a)*255, so a = 1 - (white - black)/255 to 1/255 (two uint8
    roundings). Pinned like the torch/onnx measurement above: steady on empty frames, not back to 0."""
    import cv2
    import fakes
    from conftest import ROOT

    from matteconv.ascend.build import build_om
    from matteconv.deploy import DeployOptions, generate_app, simulate
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    clip = ROOT / "golden" / "hard" / "clip" / "inputs"
    names = [p.stem for p in sorted(clip.glob("*.png"))]
    onnx_path = tmp_path / "ref4.onnx"
    export_onnx(load_checkpoint(ref4_ckpt), onnx_path, (288, 512), split_inputs=True)
    fakes.install("atc", tmp_path / "bin")
    om = build_om(onnx_path, tmp_path / "ref4", ROOT / "aipp" / "nv21_288x512.cfg",
                  env=fakes.env_with_path(tmp_path / "bin")).om
    shown = {}
    for bg in ("#000000", "#FFFFFF"):
        res = generate_app(om, tmp_path / f"app{bg[1]}", DeployOptions(runtime="acl", background=bg))
        sim = simulate(res.app, clip, tmp_path / f"out{bg[1]}")
        assert sim.stats["frames"] == len(names)
        shown[bg] = [cv2.imread(str(p)).astype(np.float64) for p in sorted((tmp_path / f"out{bg[1]}").glob("*.png"))]
    means = {n: float(1.0 - ((w - b) / 255.0).mean()) for n, b, w in zip(names, shown["#000000"], shown["#FFFFFF"])}
    # measured 2026-12-01 (288x512). Not the torch numbers above: the app sees the camera's NV21 bytes, whose
    # chroma is shared by 2x2 pixels (4:2:0), which moves the first empty frame's mean alpha 0.4296 -> 0.4422. The
    # pin allows 5e-3: the two composites' uint8 rounding is at most 1/255 per pixel, and kernels differ far less.
    measured = {"00_empty": 0.4422, "06_empty": 0.4546, "07_empty": 0.4511, "08_empty": 0.4500}
    for name, value in measured.items():
        assert means[name] == pytest.approx(value, abs=5e-3), means
    # nearly half the frame is still called foreground after the figure has left: no return to 0
    assert min(means[n] for n in EMPTY_AFTER) > 0.4, means
