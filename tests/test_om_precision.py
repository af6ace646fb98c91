"""`matteconv om --precision-mode / --keep-fp32` with the stand-in atc: the argv atc receives, the --keep_dtype file
in atc's documented format (one original layer name or OpType::TYPE per line), the checks and the warnings."""
from __future__ import annotations

import json

from typer.testing import CliRunner

import fakes
from matteconv.cli import app
from test_ascend_build import setup  # noqa: F401  (fixture: fake-tool env, a tiny ONNX with a node named "conv")


def run(*args):
    return CliRunner().invoke(app, ["om", *map(str, args)])


def test_keep_fp32_writes_the_keep_dtype_file_and_passes_it(setup):  # noqa: F811
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    r = run(model, "-o", d / "out", "--precision-mode", "force_fp16", "--keep-fp32", "conv,OpType::MVN,conv")
    assert r.exit_code == 0, r.output
    argv = json.loads(record.read_text())
    keep = d / "out.keep_dtype.cfg"
    assert "--precision_mode=force_fp16" in argv and f"--keep_dtype={keep}" in argv
    assert argv.index(f"--keep_dtype={keep}") < next(i for i, a in enumerate(argv) if a.startswith("--output="))
    assert keep.read_text() == "conv\nOpType::MVN\n"  # de-duplicated, one entry per line
    rec = json.loads((d / "out.build.json").read_text())
    assert rec["precision_mode"] == "force_fp16"
    assert rec["keep_dtype"] == {"file": str(keep), "entries": ["conv", "OpType::MVN"]}


def test_default_build_records_the_default_mode_and_passes_no_flags(setup):  # noqa: F811
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    r = run(model, "-o", d / "plain")
    assert r.exit_code == 0, r.output
    argv = json.loads(record.read_text())
    assert not [a for a in argv if a.startswith(("--precision_mode", "--keep_dtype"))]
    rec = json.loads((d / "plain.build.json").read_text())
    assert rec["precision_mode"] == "force_fp16 (atc default)" and rec["keep_dtype"] is None


def test_undocumented_mode_and_unknown_layer_are_refused_before_atc_runs(setup):  # noqa: F811
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    r = run(model, "-o", d / "x", "--precision-mode", "fp16_please")
    assert r.exit_code == 2 and "fp16_please" in r.output and "force_fp16" in r.output
    r = run(model, "-o", d / "x", "--keep-fp32", "no_such_layer")
    assert r.exit_code == 2 and "no_such_layer" in r.output
    assert not record.exists() and not list(d.glob("x*"))


def test_warnings_for_mixed_precision_and_ignored_keep_dtype(setup):  # noqa: F811
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    r = run(model, "-o", d / "mix", "--precision-mode", "allow_mix_precision", "--dry-run")
    assert r.exit_code == 0 and "ConvTranspose" in r.output and "issues/125" in r.output
    assert "--precision_mode=allow_mix_precision" in r.stdout
    r = run(model, "-o", d / "keep", "--precision-mode", "must_keep_origin_dtype", "--keep-fp32", "conv", "--dry-run")
    assert r.exit_code == 0 and "no effect" in r.output
    assert (d / "keep.keep_dtype.cfg").read_text() == "conv\n"  # the dry-run command names it: it exists
    r = run(model, "-o", d / "k310", "--keep-fp32", "conv", "--soc-version", "Ascend310", "--dry-run")
    assert "will stay fp16" in r.output  # Conv has no fp32 path on Ascend310

