"""verify --om end to end with stand-ins: `matteconv om` through a fake atc, then the .om "run on a device" by a
fake msame that executes the source ONNX behind the emulated AIPP at fp16. Checks the plumbing (raw NV21 frames
in the layout the .om expects, build record, outputs read back) and that the fp16 judgement can fail."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

import fakes
from matteconv.aipp import AippSpec, render_config
from matteconv.cli import app
from matteconv.export.onnx import export_onnx
from matteconv.model.checkpoint import load_checkpoint
from matteconv import samples
from matteconv.verify.golden import make_golden
from matteconv.verify.plan import plan_stages
from matteconv.verify.run import verify

pytestmark = pytest.mark.slow  # tier 2: builds an .om and runs a stand-in device per case

SIZE = (128, 128)


@pytest.fixture(scope="module")
def built(ref3_model, ref3_ckpt, tmp_path_factory):
    d = tmp_path_factory.mktemp("om")
    # Two photos of the reference checkpoint (as ref3_ckpt holds): every om run starts one stand-in msame per input.
    photos = list(samples.photos().items())[:2]
    gset = make_golden(ref3_model, photos, d / "golden", SIZE, checkpoint_info={"reference": {"in_channels": 3}})
    onnx_path = d / "ref3_128.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), onnx_path, SIZE)
    cfg = d / "nv21_128.cfg"
    cfg.write_text(render_config(AippSpec("nv21", SIZE)))
    bindir = d / "bin"
    fakes.install("atc", bindir)
    fakes.install("msame_onnx", bindir, as_name="msame")
    return gset, onnx_path, cfg, bindir, d


@pytest.fixture()
def device(built, monkeypatch):
    gset, onnx_path, cfg, bindir, d = built
    fakes.use_env(monkeypatch, fakes.env_with_path(bindir, HOME=str(d / "home")))
    out = d / "ref3_128"
    r = CliRunner().invoke(app, ["om", str(onnx_path), "--aipp", str(cfg), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.with_suffix(".om").is_file() and out.with_suffix(".build.json").is_file()
    return gset, onnx_path, cfg, out.with_suffix(".om")


def test_om_stage_runs_raw_frames_and_passes_against_the_prediction(device):
    """A faithful device (the stand-in runs the fp16 emulator) is exactly as far from the fp32 reference path as
    the predicted .om, input by input, so it passes the 2x + floor rule."""
    gset, onnx_path, cfg, om = device
    report = verify(gset, plan_stages(gset, onnx=onnx_path, aipp=cfg, om=om))
    om_row = next(r for r in report.results if r.name == "om")
    assert om_row.status == "passed", (om_row.reason, om_row.worst, om_row.predicted)
    p = om_row.predicted
    assert p["max_abs"] == pytest.approx(p["predicted_max_abs"], abs=1e-6)
    assert p["mean_abs"] == pytest.approx(p["predicted_mean_abs"], abs=1e-7)
    assert p["predicted_max_abs"] > 1e-3  # fp16 rounding is visible: the device path really ran at fp16
    assert om_row.tolerance["max_abs"] == pytest.approx(2 * p["predicted_max_abs"] + 4e-3, rel=0.01)


@pytest.mark.parametrize("env", [{"FAKE_DEVICE_SCALE": "1.05"}, {"FAKE_DEVICE_BREAK": "bgr"},
                                 {"FAKE_DEVICE_BREAK": "nearest"}, {"FAKE_DEVICE_BREAK": "nudge"}],
                         ids=["scaled", "swapped-colour-order", "nearest-resize", "conv-nudged-1pct"])
def test_om_stage_fails_when_the_device_computes_something_else(device, monkeypatch, env):
    gset, onnx_path, cfg, om = device
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    report = verify(gset, plan_stages(gset, om=om, required=["om"]))
    om_row = next(r for r in report.results if r.name == "om")
    assert om_row.status == "failed" and not report.ok, (om_row.worst, om_row.predicted)
    assert "predicted" in om_row.reason


def test_om_stage_skips_with_reason_without_runtime(built, monkeypatch):
    gset, *_, d = built
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    report = verify(gset, plan_stages(gset, om=d / "missing.om"), required=["om"])
    row = next(r for r in report.results if r.name == "om")
    assert row.status == "skipped" and "no Ascend runtime" in row.reason and not report.ok
