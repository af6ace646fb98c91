"""The thin CLI: version, help, doctor; library errors become one line and exit 2."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from matteconv import __version__
from matteconv.cli import app

runner = CliRunner()


def test_version_and_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"matteconv {__version__}"
    r = runner.invoke(app, ["--help"])
    for cmd in ("export", "golden", "verify", "doctor", "aipp", "om"):
        assert cmd in r.stdout


def test_doctor_reports_real_runtimes():
    r = runner.invoke(app, ["doctor", "--json"])
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert r.exit_code == 0
    for name in ("torch", "onnx", "onnxruntime", "onnxsim", "pycaffe"):
        assert rows[name]["found"], rows[name]  # make install builds real pycaffe
    assert rows["torch"]["detail"].startswith("2.13.0")
    assert not rows["atc"]["found"] and rows["atc"]["detail"] == "not found"


def test_bad_size_is_one_line(tmp_path):
    r = runner.invoke(app, ["export", str(tmp_path / "x.pt"), "--to", "onnx", "-o", str(tmp_path / "o.onnx"),
                            "--size", "500"])
    assert r.exit_code == 2
    assert "multiples of 32" in r.output and "Traceback" not in r.output


def test_export_prints_a_result_table(ref3_ckpt, tmp_path):
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(ref3_ckpt), "--to", "onnx", "-o", str(out), "--size", "64"])
    assert r.exit_code == 0, r.output
    assert "export to onnx" in r.output and "pytorch_half_pixel" in r.output
    diff = float(r.output.split("max |d alpha| vs PyTorch")[1].split("│")[1].split()[0])
    assert 0 < diff < 1e-3
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
