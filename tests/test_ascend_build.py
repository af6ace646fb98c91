"""`matteconv om` end to end with a stand-in atc: exact flags, paths with spaces, failures, dry run, no tool."""
from __future__ import annotations

from matteconv.cli import app

import json
import shlex

import pytest
from typer.testing import CliRunner

import fakes
from matteconv.aipp import AippSpec, render_config
from matteconv.fileio import sha256_file
from test_ascend_command import conv_model


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    d = tmp_path / "my models"  # a space in every path
    d.mkdir()
    model = conv_model(d / "tiny net.onnx", hw=32)
    cfg = d / "aipp 32.cfg"
    cfg.write_text(render_config(AippSpec("nv21", (32, 32))))
    bindir = tmp_path / "bin"
    record = tmp_path / "argv.json"
    fakes.use_env(monkeypatch, fakes.env_with_path(bindir, HOME=str(tmp_path / "home"), FAKE_ATC_RECORD=str(record)))
    return d, model, cfg, bindir, record


def run(*args):
    return CliRunner().invoke(app, ["om", *map(str, args)])


def test_fake_atc_gets_exact_flags(setup):
    d, model, cfg, bindir, record = setup
    atc = fakes.install("atc", bindir)
    r = run(model, "--aipp", cfg, "--soc-version", "Ascend310", "-o", d / "out net", "--json")
    assert r.exit_code == 0, r.output
    argv = json.loads(record.read_text())
    out_flag = [a for a in argv if a.startswith("--output=")]
    assert len(out_flag) == 1 and out_flag[0].startswith(f"--output={d}/.out net.partial-")
    assert [a for a in argv if not a.startswith("--output=")] == [
        str(atc), "--framework=5", f"--model={model}", "--input_shape=image:1,3,32,32", "--input_format=NCHW",
        f"--insert_op_conf={cfg}", "--soc_version=Ascend310", "--log=error"]
    om = d / "out net.om"
    assert om.read_bytes().startswith(b"FAKE-OM")
    rec = json.loads((d / "out net.build.json").read_text())
    assert rec["inputs"] == {str(model): sha256_file(model), str(cfg): sha256_file(cfg)}
    assert rec["om"]["sha256"] == sha256_file(om) and rec["aipp_config"] == cfg.read_text()
    assert rec["argv"][-2] == f"--output={d / 'out net'}" and rec["tool_found_via"] == "PATH"
    assert "ATC run success" in (d / "out net.build.log").read_text()
    assert sorted(p.name for p in d.iterdir()) == ["aipp 32.cfg", "out net.build.json", "out net.build.log",
                                                   "out net.om", "tiny net.onnx"]
    assert json.loads(r.stdout)["om"] == str(om)


def test_fake_atc_under_toolkit_home(setup, monkeypatch, tmp_path):
    d, model, cfg, bindir, record = setup
    tk = tmp_path / "Ascend toolkit"
    fakes.install("atc", tk / "bin")
    (tk / "version.info").write_text("Version=7.0.0\n")
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tk))
    r = run(model, "--aipp", cfg, "-o", d / "m.om")
    assert r.exit_code == 0, r.output
    rec = json.loads((d / "m.build.json").read_text())
    assert rec["tool_version"] == "7.0.0" and rec["tool_found_via"] == "$ASCEND_TOOLKIT_HOME"


def test_failing_atc_shows_its_errors_and_leaves_no_om(setup, monkeypatch):
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    monkeypatch.setenv("FAKE_ATC_FAIL", "1")
    r = run(model, "--aipp", cfg, "-o", d / "out")
    assert r.exit_code == 1
    assert "E19010: No parser is registered for Op [Resize_12, optype [Resize]]." in r.output
    assert "[ERROR] GE(1234,atc)" in r.output and "exited with code 1" in r.output
    assert "Solution:" not in r.output  # only the error lines, the rest is in the log
    assert not list(d.glob("*.om")) and not list(d.glob(".*partial*"))
    assert not (d / "out.build.json").exists()
    log = (d / "out.build.log").read_text()
    assert "Solution: Check the version" in log and log.startswith("$ ")


def test_dry_run_and_no_tool(setup):
    d, model, cfg, bindir, record = setup
    r = run(model, "--aipp", cfg, "-o", d / "out", "--dry-run")
    assert r.exit_code == 0
    line = r.stdout.strip()
    assert shlex.split(line) == ["atc", "--framework=5", f"--model={model}", "--input_shape=image:1,3,32,32",
                                 "--input_format=NCHW", f"--insert_op_conf={cfg}", "--soc_version=Ascend310",
                                 f"--output={d / 'out'}", "--log=error"]
    r = run(model, "--aipp", cfg, "-o", d / "out")
    assert r.exit_code == 2
    assert "atc not found" in r.output and "run the command above" in r.output
    assert f"'--model={model}'" in r.output
    assert not record.exists() and not list(d.glob("*.om"))


def test_checks_stop_before_the_tool(setup):
    d, model, cfg, bindir, record = setup
    fakes.install("atc", bindir)
    bad = conv_model(d / "hp.onnx", resize_mode="half_pixel")
    r = run(bad, "-o", d / "hp")
    assert r.exit_code == 2 and "coordinate_transformation_mode='half_pixel'" in r.output
    r = run(model, "--aipp", cfg, "--tool", "omg", "-o", d / "x")
    assert r.exit_code == 2 and "omg (old DDK) converts Caffe or TensorFlow only" in r.output
    big = d / "big.cfg"
    big.write_text(render_config(AippSpec("nv21", (64, 64))))
    r = run(model, "--aipp", big, "-o", d / "x")
    assert r.exit_code == 2 and "does not match model input 'image' 32x32" in r.output
    assert not record.exists()
