"""Letterbox policy: the whole frame in a fixed-size model of another aspect (matte, the device app's copy,
and the auto default)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from matteconv import preprocess, samples
from matteconv.backends import TorchBackend
from matteconv.deploy.app import pipeline
from matteconv.matte import matte, resolve_geometry

MODEL_HW = (288, 512)  # a landscape model


def portrait(w: int = 319, h: int = 567) -> np.ndarray:
    """A 319x567 (W x H) portrait: the astronaut's upright middle band, head near the top."""
    return cv2.resize(samples.photos()["astronaut"][:, 96:384], (w, h), interpolation=cv2.INTER_AREA)


def test_letterbox_geometry_and_padding():
    prep = preprocess.prepare(portrait(), "letterbox", MODEL_HW)
    # scale min(288/567, 512/319) = 0.508: 319 -> 162 wide, 567 -> 288 high, centred at x = (512 - 162) // 2
    assert prep.place == (175, 0, 162, 288) and prep.crop == (0, 0, 319, 567)
    assert prep.frame.shape == (288, 512, 3) and prep.frame.dtype == np.uint8
    assert (prep.frame[:, :175] == preprocess.PAD_VALUE).all() and (prep.frame[:, 337:] == preprocess.PAD_VALUE).all()
    # what the model sees in the bands: (128 - 127.5) / 127.5
    assert np.allclose(prep.tensor[0, :, :, :175], 0.5 / 127.5)
    # restore maps the fitted region back over the whole frame
    alpha = np.zeros(MODEL_HW, np.float32)
    alpha[:, 175:337] = 1.0
    assert (preprocess.restore(alpha, prep) == 1.0).all()


@pytest.mark.parametrize("frame_hw,expected", [((567, 319), "letterbox"), ((720, 1280), "device"),
                                               ((480, 640), "letterbox"), ((1080, 1920), "device"),
                                               ((300, 482), "device"), ((300, 475), "letterbox")])
def test_auto_policy_margin(frame_hw, expected):
    """A crop into 16:9 keeps (482/300)/(16/9) = 0.904 of a 300x482 frame (device), 0.891 of 300x475
    (letterbox), 0.75 of a 4:3 frame and 0.32 of the 319x567 portrait."""
    got = preprocess.auto_policy(frame_hw, MODEL_HW)
    assert got == expected and pipeline.choose_policy(frame_hw, MODEL_HW, "auto") == expected
    assert pipeline.choose_policy(frame_hw, MODEL_HW, "device") == "device"


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("hw", [(567, 319), (100, 120), (720, 1280)])
def test_device_app_letterbox_equals_preprocess(hw, mirror):
    """The board's copy (deploy/app/pipeline.py) against the one definition: same cv2 calls on the same pixels,
    so the frames and the restored mattes are compared bitwise."""
    rgb = cv2.resize(samples.photos()["coffee"], (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    ours = preprocess.prepare(rgb, "letterbox", MODEL_HW, mirror)
    board = pipeline.prepare(0, rgb, MODEL_HW, mirror, "letterbox")
    assert np.array_equal(ours.frame, board.frame) and board.place == ours.place
    alpha = np.random.default_rng(0).random(MODEL_HW).astype(np.float32)
    assert np.array_equal(preprocess.restore(alpha, ours), pipeline.restore(alpha, board))


@pytest.mark.parametrize("frame_wh,model_hw", [
    pytest.param((319, 567), MODEL_HW, marks=pytest.mark.slow),  # the case (two 288x512 runs: ~1 s idle)
    ((80, 142), (64, 128))])
def test_matte_letterbox_covers_a_portrait_in_a_landscape_model(ref3_model, tmp_path, frame_wh, model_hw):
    """`matte --policy letterbox`: a 319x567 portrait into a 288x512 model gives a matte over the whole frame;
    the centre crop (device policy) keeps only a 319x179 band and is 0 above and below it."""
    w, h = frame_wh
    src = tmp_path / "portrait.png"
    cv2.imwrite(str(src), cv2.cvtColor(portrait(w, h), cv2.COLOR_RGB2BGR))
    backend = TorchBackend(ref3_model)
    mattes = {}
    for policy in ("letterbox", "device"):
        summary = matte(src, "ref3", tmp_path / f"{policy}.png", size=model_hw, policy=policy,
                        alpha_out=tmp_path / f"{policy}_alpha.png", backend=backend)
        assert summary.policy == policy
        mattes[policy] = cv2.imread(str(tmp_path / f"{policy}_alpha.png"), cv2.IMREAD_GRAYSCALE)
    lb, dev = mattes["letterbox"], mattes["device"]
    assert lb.shape == dev.shape == (h, w)
    _, y, _, ch = preprocess.centre_crop_box(h, w, *model_hw)  # 319x567: rows 194..372
    top, bottom = slice(0, y), slice(y + ch, h)
    assert dev[top].max() == 0 and dev[bottom].max() == 0
    # the head (top) and the body (bottom) are matted under letterbox
    assert lb[top].max() > 200 and lb[bottom].max() > 200

def test_fixed_size_models_default_to_letterbox_only_past_the_margin():
    class Fixed:  # what resolve_geometry reads of a fixed-size backend (ONNX/Caffe/.om at one size)
        size = MODEL_HW

    notes: list[str] = []
    assert resolve_geometry(Fixed(), (567, 319), None, None, notes) == ("letterbox", MODEL_HW)
    assert "fitted whole into 162x288 with grey 128 bands" in notes[0]
    assert resolve_geometry(Fixed(), (720, 1280), None, None, [])[0] == "device"
    assert resolve_geometry(Fixed(), (567, 319), None, "device", [])[0] == "device"  # asked for: kept


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["letterbox", "auto"])
def test_deploy_simulate_equals_matte_under_letterbox(ref3_ckpt, tmp_path, policy):
    """Portrait frames into a landscape .om (stand-in atc): the simulated app (its own pipeline.py) equals
    `matteconv matte` through the same emulated .om; 'auto' resolves to letterbox on both sides."""
    import fakes
    from matteconv.aipp import AippSpec, render_config
    from matteconv.ascend.build import build_om
    from matteconv.deploy import DeployOptions, EmulatedOmBackend, generate_app, simulate
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    model_hw = (64, 128)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, dx in enumerate((0, 20, 40)):
        rgb = cv2.resize(samples.photos()["astronaut"][:, 60 + dx:348 + dx], (80, 142), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(frames / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    onnx_path = tmp_path / "m.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), onnx_path, model_hw)
    bindir = tmp_path / "bin"
    fakes.install("atc", bindir)
    cfg = tmp_path / "nv21.cfg"
    cfg.write_text(render_config(AippSpec("nv21", model_hw)))
    om = build_om(onnx_path, tmp_path / "model", cfg, env=fakes.env_with_path(bindir)).om
    res = generate_app(om, tmp_path / "app", DeployOptions(runtime="acl", policy=policy, background="#2e8b57"))
    assert res.config["policy"] == policy
    simulate(res.app, frames, tmp_path / "sim")
    summary = matte(frames, str(om), tmp_path / "ref", background="#2e8b57", backend=EmulatedOmBackend(om),
                    policy=None if policy == "auto" else policy)
    assert summary.policy == "letterbox"
    got, ref = (sorted((tmp_path / d).glob("*.png")) for d in ("sim", "ref"))
    assert len(got) == len(ref) == 3
    # tests/test_deploy.py: 0 levels measured for the device policy, 1 allowed for another OpenCV build
    assert max(int(cv2.absdiff(cv2.imread(str(a)), cv2.imread(str(b))).max()) for a, b in zip(got, ref)) <= 1
