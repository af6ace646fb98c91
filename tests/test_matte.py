"""`matte`: videos, images and folders through one Backend interface; temporal feedback; bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from matteconv import samples
from matteconv.errors import MatteconvError
from matteconv.matte import composite, matte, parse_background
from matteconv.video import count_frames, write_test_video

FRAMES = 24
SIZE = 128


def read_rgb(path: Path, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    assert img is not None, path
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("matte_data")
    frames = samples.clip(FRAMES, SIZE, 4)
    write_test_video(d / "clip.avi", frames)
    write_test_video(d / "clip.mp4", frames)
    write_test_video(d / "short.avi", frames[:6])
    cv2.imwrite(str(d / "frame.png"), cv2.cvtColor(frames[3], cv2.COLOR_RGB2BGR))
    return d


@pytest.fixture(scope="module")
def onnx128(ref3_onnx_128):
    """The session's shared 128x128 export (conftest)."""
    return ref3_onnx_128


@pytest.fixture(scope="module")
def torch4(ref4_ckpt):
    from matteconv.backends import open_backend

    return open_backend(ref4_ckpt)


# ------------------------------------------------------------------ videos


@pytest.mark.parametrize("src,dst,alpha", [("clip.avi", "out.mp4", "alpha.avi"),
                                           pytest.param("clip.mp4", "out.avi", None, marks=pytest.mark.slow)])
def test_video_through_onnx_keeps_frames_size_and_rate(data, onnx128, tmp_path, src, dst, alpha):
    s = matte(data / src, onnx128, tmp_path / dst, alpha_out=tmp_path / alpha if alpha else None)
    assert s.frames == FRAMES and s.backend == "onnx" and s.policy == "device" and s.model_size == [SIZE, SIZE]
    n, size, fps = count_frames(tmp_path / dst)
    assert (n, size, round(fps)) == (FRAMES, (SIZE, SIZE), 25)
    if alpha:
        assert count_frames(tmp_path / alpha)[:2] == (FRAMES, (SIZE, SIZE))
    assert s.model_fps > 0 and s.e2e_fps > 0 and s.flicker is not None
    assert leftovers(tmp_path, {dst, alpha}) == []


@pytest.mark.slow  # end to end: a torch temporal video (issue 38); the feedback itself is tested below in tier 1
def test_video_through_temporal_torch_checkpoint(data, ref4_ckpt, tmp_path):
    s = matte(data / "clip.avi", ref4_ckpt, tmp_path / "out.mp4", size=SIZE, side_by_side_out=True)
    assert s.backend == "torch" and s.in_channels == 4 and s.temporal is True and s.policy == "official"
    assert s.frames == FRAMES and s.resets == 1 and s.scene_cuts == 0
    assert count_frames(tmp_path / "out.mp4")[:2] == (FRAMES, (SIZE, 2 * SIZE))
    assert 0 <= s.flicker < 1 and 0 < s.static_fraction < 1


def test_temporal_feedback_changes_the_alphas(data, torch4, tmp_path):
    runs = {}
    for temporal in (True, False):
        out = tmp_path / f"alpha_{temporal}"
        s = matte(data / "short.avi", "ref4", tmp_path / f"c_{temporal}", alpha_out=out, size=SIZE,
                  temporal=temporal, backend=torch4)
        assert s.temporal is temporal and s.resets == (1 if temporal else 6)
        runs[temporal] = [read_rgb(p).astype(int) for p in sorted(out.iterdir())]
    assert len(runs[True]) == len(runs[False]) == 6
    assert np.array_equal(runs[True][0], runs[False][0])  # first frame: zeros either way
    assert all(np.abs(a - b).mean() > 0.5 for a, b in zip(runs[True][1:], runs[False][1:]))


def test_scene_cut_resets_the_feedback(torch4, tmp_path):
    a, b = samples.clip(3, SIZE, 4), [255 - f for f in samples.clip(3, SIZE, 4)]
    write_test_video(tmp_path / "cut.avi", a + b)
    s = matte(tmp_path / "cut.avi", "ref4", tmp_path / "o.avi", size=SIZE, backend=torch4)
    assert s.scene_cuts == 1 and s.resets == 2 and s.frames == 6


def test_fixed_size_model_on_other_frames_says_so(onnx128, tmp_path):
    frames = [cv2.resize(f, (160, 120)) for f in samples.clip(4, SIZE, 4)]
    write_test_video(tmp_path / "wide.avi", frames)
    s = matte(tmp_path / "wide.avi", onnx128, tmp_path / "o.avi", size="256")
    assert any("--size 256x256 ignored" in n for n in s.notes)
    # 4:3 frames into a square model: a centre crop would keep 75% of the width, past the 10% margin, so the
    # default is letterbox (preprocess.auto_policy): the whole 160x120 frame fitted into 128x96
    assert s.policy == "letterbox" and any("fitted whole into 128x96" in n and "128x128" in n for n in s.notes)
    assert count_frames(tmp_path / "o.avi")[:2] == (4, (120, 160))


# ------------------------------------------------------------------ images, folders, backgrounds


def test_background_variants_on_an_image(data, onnx128, tmp_path):
    frame = read_rgb(data / "frame.png")
    matte(data / "frame.png", onnx128, tmp_path / "red.png", background="#FF0000", alpha_out=tmp_path / "a.png")
    alpha = read_rgb(tmp_path / "a.png").astype(np.float32) / 255
    red = read_rgb(tmp_path / "red.png").astype(int)
    want = composite(frame, alpha, parse_background("#ff0000")).astype(int)
    assert np.abs(red - want).max() <= 1
    bg = alpha < 0.02
    assert bg.any() and (red[bg][:, 0] >= 245).all()

    matte(data / "frame.png", onnx128, tmp_path / "cut.png", background="none")
    rgba = read_rgb(tmp_path / "cut.png")
    assert rgba.shape == (SIZE, SIZE, 4)
    assert np.array_equal(rgba[..., :3], frame)
    assert np.abs(rgba[..., 3].astype(int) - np.rint(alpha * 255)).max() <= 1

    matte(data / "frame.png", onnx128, tmp_path / "blur.png", background="blur")
    blur = read_rgb(tmp_path / "blur.png").astype(int)
    assert blur.shape == (SIZE, SIZE, 3) and not np.array_equal(blur, red)

    pic = np.zeros((50, 80, 3), np.uint8)
    pic[..., 2] = 200
    cv2.imwrite(str(tmp_path / "bg.png"), pic)  # BGR: red channel 200 stored last
    matte(data / "frame.png", onnx128, tmp_path / "file.jpg", background=str(tmp_path / "bg.png"),
          side_by_side_out=True)
    sbs = read_rgb(tmp_path / "file.jpg").astype(int)
    assert sbs.shape == (SIZE, 2 * SIZE, 3)
    assert np.abs(sbs[:, SIZE:][bg][:, 0] - 200).mean() < 10


def test_folder_in_folder_out_with_alpha_channel_and_16bit_inputs(data, onnx128, tmp_path):
    frames = samples.clip(3, SIZE, 4)
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "b.png"), cv2.cvtColor(np.dstack([frames[1], np.full((SIZE, SIZE), 7, np.uint8)]),
                                                  cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(src / "c.png"), cv2.cvtColor(frames[2].astype(np.uint16) * 257, cv2.COLOR_RGB2BGR))
    s = matte(src, onnx128, tmp_path / "out", alpha_out=tmp_path / "alphas")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    assert sorted(p.name for p in (tmp_path / "alphas").iterdir()) == ["a.png", "b.png", "c.png"]
    assert any("alpha channel ignored" in n for n in s.notes) and any("16-bit" in n for n in s.notes)
    # the 16-bit frame is scaled exactly back to the 8-bit one: same result as the 8-bit original
    one = tmp_path / "one.png"
    cv2.imwrite(str(one), cv2.cvtColor(frames[2], cv2.COLOR_RGB2BGR))
    matte(one, onnx128, tmp_path / "one_out.png")
    assert np.array_equal(read_rgb(tmp_path / "one_out.png"), read_rgb(tmp_path / "out" / "c.png"))
    assert leftovers(tmp_path, {"in", "out", "alphas", "one.png", "one_out.png"}) == []


def test_none_background_on_video_is_black_and_noted(data, onnx128, tmp_path):
    s = matte(data / "short.avi", onnx128, tmp_path / "o.avi", background="none")
    assert any("composited over black" in n for n in s.notes)
    s = matte(data / "short.avi", onnx128, tmp_path / "frames", background="none")
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == 6 and read_rgb(files[0]).shape == (SIZE, SIZE, 4)


# ------------------------------------------------------------------ bad inputs: one clear error, no output


class Failing:
    name, in_channels, size = "fake", 3, (SIZE, SIZE)

    def __init__(self, at: int):
        self.at, self.n = at, 0

    def run(self, x):
        self.n += 1
        if self.n > self.at:
            raise RuntimeError("device lost\nmore detail")
        return np.full((1, 1, *x.shape[2:]), 0.5, np.float32)


@pytest.mark.parametrize("dst", ["o.mp4", "folder"])
def test_failure_mid_video_leaves_no_output(data, tmp_path, dst):
    with pytest.raises(MatteconvError, match=r"fake failed on frame 5: device lost$"):
        matte(data / "clip.avi", "fake.onnx", tmp_path / dst, alpha_out=tmp_path / "a.avi" if dst.endswith("4")
              else tmp_path / "alphas", backend=Failing(5))
    assert leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("content,match", [(b"", "cannot open|no decodable"),
                                           (b"\x00garbage" * 100, "cannot open|no decodable")])
def test_unreadable_or_empty_video(onnx128, tmp_path, content, match):
    (tmp_path / "bad.mp4").write_bytes(content)
    with pytest.raises(MatteconvError, match=match):
        matte(tmp_path / "bad.mp4", onnx128, tmp_path / "o.mp4")
    assert leftovers(tmp_path, {"bad.mp4"}) == []


def test_bad_paths_are_clear_errors(data, onnx128, tmp_path):
    cases = [
        ({"input": tmp_path / "missing.mp4", "output": tmp_path / "o.mp4"}, "input not found"),
        ({"input": data / "clip.avi", "output": tmp_path / "nodir" / "o.mp4"}, "does not exist"),
        ({"input": data / "clip.avi", "output": tmp_path / "o.mkv"}, r"must be \.mp4"),
        ({"input": data / "clip.avi", "output": tmp_path / "o.png"}, "folder .or video. output"),
        ({"input": data / "frame.png", "output": tmp_path / "o.mp4"}, "needs a video input"),
        ({"input": data / "frame.png", "output": tmp_path / "o.jpg", "background": "none"}, "RGBA: use .png"),
        ({"input": data / "frame.png", "output": tmp_path / "o.png", "background": "#12345"}, "not a colour"),
        ({"input": data / "frame.png", "output": tmp_path / "o.png", "background": "nofile.png"}, "no such file"),
        ({"input": data / "frame.png", "output": data / "frame.png"}, "overwrite the input"),
    ]
    for kw, match in cases:
        inp, out = kw.pop("input"), kw.pop("output")
        with pytest.raises(MatteconvError, match=match):
            matte(inp, onnx128, out, **kw)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep")
    with pytest.raises(MatteconvError, match="not an empty folder"):
        matte(data / "short.avi", onnx128, tmp_path / "full")
    assert leftovers(tmp_path, {"full"}) == [] and (tmp_path / "full" / "x.txt").read_text() == "keep"


def test_cli_json_and_error_exit(data, onnx128, tmp_path):
    from typer.testing import CliRunner

    from matteconv.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["matte", str(data / "short.avi"), "--model", str(onnx128), "-o", str(tmp_path / "o.mp4"),
                            "--background", "blur", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["frames"] == 6 and d["e2e_fps"] > 0 and d["model_fps"] > 0 and "flicker" in d
    r = runner.invoke(app, ["matte", str(data / "short.avi"), "--model", str(onnx128), "-o",
                            str(tmp_path / "x" / "o.mp4")])
    assert r.exit_code == 2
    assert "does not exist" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["matte", str(data / "short.avi"), "--model", str(onnx128), "-o", str(tmp_path / "p.avi")])
    assert r.exit_code == 0, r.output
    assert "throughput: model" in r.stdout and "end-to-end" in r.stdout and "flicker" in r.stdout
