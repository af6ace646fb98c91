"""Bad input to `train`, `golden` and `quantize`: one error line naming the file or option, exit 2, no traceback,
nothing written, and found before the expensive work."""
from __future__ import annotations

import shutil

import pytest
import torch
from typer.testing import CliRunner

from matteconv.cli import app

runner = CliRunner()
TRAIN = ["--steps", "1", "--size", "64", "--batch-size", "2", "--threads", "1"]


class NeedsCode:
    """Pickled into a training state: loading it would need this class (code), which --resume must refuse."""


class TinyConv(torch.nn.Module):
    """1x3xHxW -> 1x1xHxW at any size: a quantizable stand-in for MODNet (golden sets need `in_channels`)."""

    def __init__(self):
        super().__init__()
        self.in_channels = 3
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def refused(r, *fragments: str) -> None:
    """Exit 2 with one `error:` line (no traceback) holding every fragment."""
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    line = r.output.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, r.output
    for f in fragments:
        assert f in line, (f, r.output)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A MODNet(3) state_dict checkpoint, as a user would save one."""
    from matteconv.model.modnet import MODNet

    path = tmp_path_factory.mktemp("ckpt") / "ok.pth"
    torch.manual_seed(0)
    torch.save(MODNet(3).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(onnx at 32x32, golden set at 32x32, golden set at 64x64, an image file) from TinyConv."""
    import cv2
    from conftest import toy_onnx_and_golden

    from matteconv import samples

    d = tmp_path_factory.mktemp("tiny")
    onnx_path, sets = toy_onnx_and_golden(TinyConv().eval(), d, (32, 32), 2, ((32, 32), (64, 64)))
    image = d / "rgb.png"
    cv2.imwrite(str(image), cv2.resize(next(iter(samples.photos().values()))[..., ::-1], (64, 64)))
    return onnx_path, sets[(32, 32)], sets[(64, 64)], image


# ---- train ------------------------------------------------------------------------------------------------------

def test_train_refuses_to_overwrite_its_init(ckpt, tmp_path):  # 1
    init = tmp_path / "ok.pth"
    shutil.copy(ckpt, init)
    before = init.read_bytes()
    r = runner.invoke(app, ["train", "-o", str(init), "--init", str(init), *TRAIN])
    refused(r, f"{init}: output would overwrite the input")
    assert init.read_bytes() == before and not (tmp_path / "ok.pth.state.pt").exists()


@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--lr", "inf"), ("--lr", "0"), ("--lr", "-0.1"),
                                          ("--lr-step", "nan"), ("--lr-gamma", "inf"), ("--lr-gamma", "0")])
def test_train_refuses_non_finite_or_non_positive_floats(option, value, tmp_path):  # 2
    out = tmp_path / "t.pt"
    r = runner.invoke(app, ["train", "-o", str(out), option, value, *TRAIN])
    refused(r, f"{option} ", "must be a finite number above 0")
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_to_write_non_finite_weights(tmp_path):  # 2: finite loss, weights inf/NaN after the step
    out = tmp_path / "t.pt"
    r = runner.invoke(app, ["train", "-o", str(out), "--lr", "1e300", *TRAIN])
    refused(r, f"{out}: not written: the weights became non-finite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_refuses_cuda_without_cuda(tmp_path):  # 3
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "t.pt"), "--device", "cuda", *TRAIN])
    refused(r, "--device cuda: CUDA is not available")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device", ["foo", "cuda:x", "meta"])
def test_train_refuses_unknown_devices(device, tmp_path):  # 3
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "t.pt"), "--device", device, *TRAIN])
    refused(r, f"--device {device!r}:", "cpu or cuda[:N]")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ["code", "bytes", "not-a-state"])
def test_resume_refuses_a_bad_state_file(content, tmp_path):  # 4
    out = tmp_path / "t.pt"
    state = tmp_path / "t.pt.state.pt"
    if content == "code":
        torch.save({"config": {}, "x": NeedsCode()}, state)
    elif content == "bytes":
        state.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    else:
        torch.save({"step": 1}, state)
    r = runner.invoke(app, ["train", "-o", str(out), "--resume", *TRAIN])
    fragment = {"code": "refused: unpickling the training state needs code", "bytes": "not a readable training state",
                "not-a-state": "not a training state written by `matteconv train`"}[content]
    refused(r, f"{state}: {fragment}")
    assert not out.exists()


def test_train_checks_the_output_before_training(tmp_path, monkeypatch):  # 5
    import matteconv.train.trainer as trainer

    def no_training(*a, **k):
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(trainer, "_train", no_training)
    folder = tmp_path / "adir.pt"
    folder.mkdir()
    r = runner.invoke(app, ["train", "-o", str(folder), *TRAIN])
    refused(r, f"{folder}: is a folder")
    assert list(folder.iterdir()) == []


def test_train_and_golden_checkpoint_refuse_a_non_checkpoint_suffix(tmp_path):  # 5
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "t.onnx"), *TRAIN])
    refused(r, f"{tmp_path / 't.onnx'}: the output is a checkpoint; name it .pt, .pth, .ckpt or .safetensors")
    r = runner.invoke(app, ["golden", "checkpoint", "-o", str(tmp_path / "r.onnx")])
    refused(r, f"{tmp_path / 'r.onnx'}: the output is a checkpoint", "(got .onnx)")
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_one_value_per_batchnorm_channel(tmp_path):  # 6
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "t.pt"), "--steps", "1", "--size", "32",
                            "--batch-size", "1"])
    refused(r, "--size 32x32 with --batch-size 1:", "more than one value per channel")
    assert list(tmp_path.iterdir()) == []


# ---- golden -----------------------------------------------------------------------------------------------------

def test_golden_make_images_must_be_a_folder(ckpt, tiny, tmp_path):  # 7
    image = tiny[3]
    for images, why in ((image, "not a folder"), (tmp_path / "missingdir", "folder not found")):
        r = runner.invoke(app, ["golden", "make", "--ckpt", str(ckpt), "--images", str(images), "--size", "64",
                                "-o", str(tmp_path / "g")])
        refused(r, f"{images}: {why}")
    assert not (tmp_path / "g").exists()


def test_golden_hard_refuses_a_file_as_output_folder(ckpt, tmp_path):  # 8
    target = tmp_path / "ok.pth"
    shutil.copy(ckpt, target)
    r = runner.invoke(app, ["golden", "hard", "-o", str(target), "--size", "64"])
    refused(r, f"{target}: exists and is a file, expected a folder")
    assert target.read_bytes() == ckpt.read_bytes()


def test_golden_refuses_sizes_that_cannot_fit_in_memory(ckpt, tiny, tmp_path, monkeypatch):  # 9
    import matteconv.export.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: int(64e9))
    folder = tiny[3].parent
    r = runner.invoke(app, ["golden", "make", "--ckpt", str(ckpt), "--images", str(folder), "--size", "100000",
                            "-o", str(tmp_path / "g")])
    refused(r, "--size 100000x100000: golden alphas in float64 need about", "64.0 GB is available")
    r = runner.invoke(app, ["golden", "hard", "--size", "100000", "-o", str(tmp_path / "h")])
    refused(r, "--size 100000x100000: golden alphas in float64 need about")
    assert list(tmp_path.iterdir()) == []


# ---- quantize ---------------------------------------------------------------------------------------------------

def test_quantize_images_must_be_a_folder(tiny, tmp_path):  # 7
    onnx_path, g32, _, image = tiny
    for images, why in ((image, "not a folder"), (tmp_path / "missingdir", "folder not found")):
        r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "--images", str(images),
                                "-o", str(tmp_path / "q")])
        refused(r, f"{images}: {why}")
    assert not (tmp_path / "q").exists()


def test_quantize_refuses_a_file_as_output_folder(tiny, tmp_path):  # 8
    onnx_path, g32, _, _ = tiny
    target = tmp_path / "ok.pth"
    target.write_bytes(b"precious")
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "-o", str(target)])
    refused(r, f"{target}: exists and is a file, expected a folder")
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize("data", [b"\x08\x07\x12\x04" + bytes(range(200)), b"\xff" * 300])
def test_quantize_refuses_an_unreadable_onnx(data, tiny, tmp_path):  # 10
    _, g32, _, _ = tiny
    model = tmp_path / "trunc.onnx"
    model.write_bytes(data)
    r = runner.invoke(app, ["quantize", str(model), "--golden", str(g32), "-o", str(tmp_path / "q")])
    refused(r, f"{model}: not a readable ONNX model")
    assert not (tmp_path / "q").exists()


def test_quantize_refuses_a_golden_set_of_another_size(tiny, tmp_path):  # 11
    onnx_path, _, g64, _ = tiny
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g64), "-o", str(tmp_path / "q")])
    refused(r, f"{onnx_path}: fixed input size 32x32 differs from the golden set's 64x64")
    assert not (tmp_path / "q").exists()


def test_quantize_reads_and_checks_the_aipp_config(tiny, tmp_path):  # 12
    onnx_path, g32, _, _ = tiny
    bad = tmp_path / "rand.cfg"
    bad.write_bytes(bytes(range(128, 256)) * 2)
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "--aipp", str(bad),
                            "-o", str(tmp_path / "q")])
    refused(r, f"{bad}:1: not UTF-8 text")
    assert not (tmp_path / "q").exists()
    wrong = tmp_path / "a64.cfg"  # a readable config for another size: refused against the model's input
    assert runner.invoke(app, ["aipp", "-o", str(wrong), "--size", "64"]).exit_code == 0
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "--aipp", str(wrong),
                            "-o", str(tmp_path / "q")])
    refused(r, f"{wrong}:", "does not match model input 'input' 32x32")
    assert not (tmp_path / "q").exists()
    good = tmp_path / "a32.cfg"
    assert runner.invoke(app, ["aipp", "-o", str(good), "--size", "32"]).exit_code == 0
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "--aipp", str(good),
                            "-o", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "q" / "quant.json").is_file()


def test_quantize_refuses_an_unknown_soc_version(tiny, tmp_path):  # 13
    onnx_path, g32, _, _ = tiny
    r = runner.invoke(app, ["quantize", str(onnx_path), "--golden", str(g32), "--soc-version", "Foo",
                            "-o", str(tmp_path / "q")])
    refused(r, "--soc-version 'Foo': not a SoC atc knows", "Ascend310B1")
    assert not (tmp_path / "q").exists()
