"""Bad input at every stage (verify, deploy, matte, export, om): one line naming the file or option, exit 2, no
traceback, nothing written. Each test is a tester's reproduction; tiny sizes (64x64 models, 64x64 golden set)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import fakes
from matteconv.cli import app

runner = CliRunner()
SIZE = (64, 64)


def run(*args) -> "CliRunner.invoke":
    return runner.invoke(app, [str(a) for a in args])


def refused(r, *fragments: str) -> str:
    """Exit 2, one error line containing every fragment, no traceback; returns the error line."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.output
    for f in fragments:
        assert f in errors[0], r.output
    return errors[0]


def contents(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def fx(hr16_ckpt, tmp_path_factory) -> dict[str, Path]:
    """ckpt (hr16 MODNet(3)), onnx (its 64x64 export), golden (64x64 set), om (stand-in atc, NV21 AIPP) and bad
    inputs: a folder, an empty folder, 80x96 images, a truncated png/mp4, a 0-byte .onnx, random bytes."""
    from matteconv import samples
    from matteconv.aipp import AippSpec, render_config
    from matteconv.ascend.build import build_om
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint
    from matteconv.verify.golden import make_set
    from matteconv.video import write_test_video

    d = tmp_path_factory.mktemp("bad_input")
    out = {"ckpt": hr16_ckpt, "onnx": d / "ok.onnx", "golden": d / "g64"}
    export_onnx(load_checkpoint(hr16_ckpt), out["onnx"], SIZE)
    make_set(out["golden"], hr16_ckpt, size=SIZE)
    cfg = d / "nv21.cfg"
    cfg.write_text(render_config(AippSpec("nv21", SIZE)))
    bindir = d / "bin"
    fakes.install("atc", bindir)
    out["om"] = build_om(out["onnx"], d / "okm", cfg, env=fakes.env_with_path(bindir)).om
    rng = np.random.default_rng(0)
    for name in ("adir", "emptydir", "imgdir", "baddir"):
        out[name] = d / name
        out[name].mkdir()
    for i in range(3):
        cv2.imwrite(str(out["imgdir"] / f"f{i}.png"), rng.integers(0, 255, (96, 80, 3), np.uint8))
    out["rgb"] = d / "rgb.png"
    cv2.imwrite(str(out["rgb"]), rng.integers(0, 255, (64, 64, 3), np.uint8))
    png = out["rgb"].read_bytes()
    out["trunc_png"] = d / "trunc.png"
    out["trunc_png"].write_bytes(png[: len(png) // 2])
    cv2.imwrite(str(out["baddir"] / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    (out["baddir"] / "b.png").write_bytes(png[: len(png) // 2])  # decodes only when the app reaches it
    out["clip"] = write_test_video(d / "clip.mp4", samples.clip(4, 64, 4))
    video = out["clip"].read_bytes()
    out["trunc_mp4"] = d / "trunc.mp4"
    out["trunc_mp4"].write_bytes(video[: len(video) // 2])
    out["empty_onnx"] = d / "empty.onnx"
    out["empty_onnx"].write_bytes(b"")
    out["rand"] = d / "rand.pth"
    out["rand"].write_bytes(rng.integers(0, 255, 4096, np.uint8).tobytes())
    return out


# ---------------------------------------------------------------- verify (items 1, 2)

def test_verify_missing_om_is_an_error_not_a_skip(fx, tmp_path):
    report = tmp_path / "r.json"
    r = run("verify", "--golden", fx["golden"], "--ckpt", fx["ckpt"], "--om", tmp_path / "missing.om",
            "--json", report)
    refused(r, "missing.om: not found")
    assert "skipped" not in r.output and "within tolerance" not in r.output
    assert not report.exists()


def test_verify_folder_as_onnx(fx):
    refused(run("verify", "--golden", fx["golden"], "--ckpt", fx["ckpt"], "--onnx", fx["adir"]),
            f"{fx['adir']}: is a folder")


def test_verify_binary_quant_record_names_the_file(fx):
    line = refused(run("verify", "--golden", fx["golden"], "--ckpt", fx["ckpt"], "--onnx", fx["onnx"], "--int8",
                       "--quant-record", fx["rand"]),
                   f"{fx['rand']}: not a matteconv quantization record")
    assert "codec can't decode" not in line


# ---------------------------------------------------------------- deploy (items 3, 4, 5)

def test_deploy_refuses_a_bad_colour_before_writing(fx, tmp_path):
    refused(run("deploy", fx["om"], "-o", tmp_path / "app", "-b", "#zzz"), "--background #zzz", "not a colour")
    assert contents(tmp_path) == []


@pytest.mark.parametrize("bad", ["trunc_mp4", "emptydir"])
def test_deploy_refuses_an_unreadable_simulation_input_before_writing(fx, tmp_path, bad):
    r = run("deploy", fx["om"], "-o", tmp_path / "app", "--simulate", fx[bad], "--sim-output", tmp_path / "s.mp4")
    refused(r, str(fx[bad]))
    assert "wrote" not in r.output and contents(tmp_path) == []  # no app/, no app.zip


def test_deploy_refuses_frames_smaller_than_the_hilens_display(fx, tmp_path):
    r = run("deploy", fx["om"], "-o", tmp_path / "app", "--simulate", fx["imgdir"], "--sim-output", tmp_path / "s")
    refused(r, str(fx["imgdir"]), "80x96", "128x128")
    assert "Display.show" not in r.output and contents(tmp_path) == []


@pytest.mark.parametrize("runtime, extra", [("acl", ()), ("hilens", ("--view", "crop"))])  # 64x64 < 128 display
def test_deploy_keeps_nothing_when_the_simulation_fails(fx, tmp_path, runtime, extra):
    """Arguments pass the up-front checks; the app then fails on the second image: no app, archive or output.
    The HiLens app takes a camera read error for the end of the stream, as on the device; the simulation still
    says which frame stopped it instead of a clean "done: 1 frames"."""
    r = run("deploy", fx["om"], "-r", runtime, *extra, "-o", tmp_path / "app", "--simulate", fx["baddir"],
            "--sim-output", tmp_path / "s")
    refused(r, "b.png", "not a readable image")
    assert contents(tmp_path) == []


# ---------------------------------------------------------------- matte (items 6, 7, 8)

def test_matte_refuses_a_size_that_cannot_fit_in_memory(fx, tmp_path):
    refused(run("matte", fx["rgb"], "-m", fx["ckpt"], "--size=100000", "-o", tmp_path / "r.png"),
            "--size 100000x100000", "GB")
    assert contents(tmp_path) == []


def test_matte_folder_as_background(fx, tmp_path):
    refused(run("matte", fx["rgb"], "-m", fx["onnx"], "-o", tmp_path / "r.png", "-b", fx["adir"]),
            f"--background {fx['adir']}: is a folder")
    assert contents(tmp_path) == []


@pytest.mark.parametrize("bad, suffix", [("trunc_png", ".png"), ("trunc_mp4", ".mp4")])
def test_opencv_and_ffmpeg_messages_stay_off_stderr(fx, tmp_path, bad, suffix):
    """OpenCV's '[ WARN:0] ... incomplete' and FFmpeg's 'moov atom not found' go to the process's stderr (not
    CliRunner's), so the command runs as a user runs it: only our one line may appear."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}
    p = subprocess.run([sys.executable, "-m", "matteconv", "matte", str(fx[bad]), "-m", str(fx["onnx"]),
                        "-o", str(tmp_path / f"r{suffix}")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {fx[bad]}"), p.stderr
    assert contents(tmp_path) == []


# ---------------------------------------------------------------- export (item 9)

def test_export_caffe_to_an_existing_folder(fx):
    before = contents(fx["adir"].parent)
    refused(run("export", fx["ckpt"], "--to", "caffe", "-o", f"{fx['adir']}/", "--size", "64"),
            f"{fx['adir']}: is a folder")
    assert contents(fx["adir"].parent) == before and contents(fx["adir"]) == []


# ---------------------------------------------------------------- om (items 10, 11, 12)

def test_om_input_shape_that_contradicts_the_model(fx, tmp_path):
    refused(run("om", fx["onnx"], "-o", tmp_path / "m", "--input-shape", "input:1,3,63,64", "--dry-run"),
            "input:1,3,63,64", str(fx["onnx"]), "1,3,64,64")
    refused(run("om", fx["onnx"], "-o", tmp_path / "m", "--input-shape", "input:1,3,0,-5", "--dry-run"),
            "input:1,3,0,-5", "positive")
    r = run("om", fx["onnx"], "-o", tmp_path / "m", "--input-shape", "input:1,3,64,64", "--dry-run")
    assert r.exit_code == 0, r.output
    assert contents(tmp_path) == []


def test_om_unknown_soc_version(fx, tmp_path):
    line = refused(run("om", fx["onnx"], "-o", tmp_path / "m", "--soc-version", "Foo", "--dry-run"),
                   "--soc-version 'Foo'", "Ascend310B1")
    assert "--force" in line
    r = run("om", fx["onnx"], "-o", tmp_path / "m", "--soc-version", "Foo", "--dry-run", "--force")
    assert r.exit_code == 0 and "--soc_version=Foo" in r.output, r.output
    assert run("om", fx["onnx"], "-o", tmp_path / "m", "--soc-version", "Ascend310P3", "--dry-run").exit_code == 0


def test_om_empty_file_and_folder(fx, tmp_path):
    line = refused(run("om", fx["empty_onnx"], "-o", tmp_path / "m", "--dry-run"), f"{fx['empty_onnx']}: empty file")
    assert "opset" not in line
    refused(run("om", fx["adir"], "-o", tmp_path / "m", "--dry-run"), f"{fx['adir']}: is a folder")
    assert contents(tmp_path) == []


def test_soc_validator_is_reusable():
    from matteconv.ascend.command import check_soc_version
    from matteconv.errors import MatteconvError

    check_soc_version("Ascend310")
    with pytest.raises(MatteconvError, match="did you mean Ascend310B1"):
        check_soc_version("ascend310b1")
