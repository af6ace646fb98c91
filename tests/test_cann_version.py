"""CANN versions: read from a (fake) toolkit the way CANN lays it out, and `--soc-version Ascend310` refused by a
CANN that no longer lists it (8.3.RC1 on), with the replacement named; `doctor` shows the version."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import fakes
from matteconv.ascend.cann import SOCS, soc_help, soc_problem, toolkit_version, version_key
from matteconv.ascend.discover import find_tool
from matteconv.cli import app
from matteconv.doctor import diagnose
from test_ascend_command import conv_model


def test_version_order():
    order = ["7.0.RC1.alpha003", "8.0.RC1", "8.0.RC3", "8.0.0", "8.1.RC1", "8.2.RC1", "8.3.RC1", "8.3.RC2", "8.5.0",
             "9.2.0-beta.2"]
    keys = [version_key(v) for v in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert version_key("8.0.T6") == (8, 0, 0, 0) and version_key("unknown") is None


def test_ascend310_is_gone_from_8_3():
    msg = soc_problem("Ascend310", "8.3.RC1")
    assert msg.startswith("--soc-version Ascend310 is not accepted by CANN 8.3.RC1 (atc lists it up to 8.2.RC1")
    assert "Ascend310B1 for Atlas 200I DK A2 / Orange Pi AIpro" in msg and "Ascend310P3" in msg
    assert "82RC1alpha003" in msg and "83RC1" in msg  # both parameter pages cited
    for ok in ("8.2.RC1", "8.0.0", "8.0.RC1", "7.0.0"):
        assert soc_problem("Ascend310", ok) is None, ok
    assert soc_problem("Ascend310", None) is None  # unknown version: atc decides
    assert soc_problem("Ascend310B1", "8.5.0") is None and soc_problem("Ascend310P3", "9.0.0") is None
    assert all(name in soc_help() for name in SOCS) and "CANN <= 8.2.RC1" in soc_help()


def test_version_sources(tmp_path, monkeypatch):
    real = tmp_path / "Ascend/ascend-toolkit/8.3.RC1"
    fakes.toolkit(real, "8.3.RC1", arch="aarch64")
    (tmp_path / "Ascend/ascend-toolkit/latest").symlink_to(real)
    tool = find_tool("atc", {"ASCEND_TOOLKIT_HOME": str(tmp_path / "Ascend/ascend-toolkit/latest")}, system_roots=())
    v = toolkit_version(tool)
    assert v.version == "8.3.RC1" and v.source.endswith("aarch64-linux/ascend_toolkit_install.info")
    cfg_kit = tmp_path / "cfg"
    atc = fakes.toolkit(cfg_kit, None)
    (cfg_kit / "version.cfg").write_text("# version: 1.0\nruntime_running_version=[7.7.T20.0.B210:8.1.RC1]\n")
    assert toolkit_version(find_tool("atc", {"PATH": str(atc.parent)}, system_roots=())).version == "8.1.RC1"
    bare = tmp_path / "bare"
    atc = fakes.toolkit(bare, None)
    tool = find_tool("atc", {"PATH": str(atc.parent)}, system_roots=())
    assert toolkit_version(tool).version is None  # the fake refuses --version like any bad flag
    monkeypatch.setenv("FAKE_ATC_VERSION", "8.5.0")
    v = toolkit_version(tool)
    assert v.version == "8.5.0" and v.source == f"{atc} --version"
    assert toolkit_version(tool, ask_tool=False).version is None


@pytest.fixture()
def kit(tmp_path, monkeypatch):
    """A clean environment whose only atc is a fake toolkit under $ASCEND_TOOLKIT_HOME."""
    record = tmp_path / "argv.json"
    fakes.use_env(monkeypatch, fakes.env_with_path(tmp_path / "nobin", HOME=str(tmp_path / "home"), FAKE_ATC_RECORD=str(record)))

    def make(version):
        root = tmp_path / f"cann {version}"
        fakes.toolkit(root, version)
        monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(root))
        return root

    return make, conv_model(tmp_path / "m.onnx"), record


def run(*args):
    return CliRunner().invoke(app, ["om", *map(str, args)])


def test_om_refuses_ascend310_on_cann_8_3(kit, tmp_path):
    make, model, record = kit
    make("8.3.RC1")
    r = run(model, "-o", tmp_path / "m")
    assert r.exit_code == 2 and not record.exists() and not (tmp_path / "m.om").exists()
    assert "--soc-version Ascend310 is not accepted by CANN 8.3.RC1" in r.output
    assert "Ascend310B1" in r.output and "Ascend310P3" in r.output
    r = run(model, "-o", tmp_path / "m", "--soc-version", "Ascend310B1", "--json")
    assert r.exit_code == 0, r.output
    assert "--soc_version=Ascend310B1" in json.loads(record.read_text())
    rec = json.loads((tmp_path / "m.build.json").read_text())
    assert rec["tool_version"] == "8.3.RC1" and rec["tool_version_source"].endswith("ascend_toolkit_install.info")
    r = run(model, "-o", tmp_path / "forced", "--force")
    assert r.exit_code == 0 and "ignored (--force)" in r.output
    assert "--soc_version=Ascend310" in json.loads(record.read_text())


def test_om_accepts_ascend310_on_cann_8_0(kit, tmp_path):
    make, model, record = kit
    make("8.0.RC1")
    r = run(model, "-o", tmp_path / "m", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["cann_version"] == "8.0.RC1" and "--soc_version=Ascend310" in out["argv"] and out["warnings"] == []
    r = run(model, "-o", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.build.json").read_text())["tool_version"] == "8.0.RC1"


def test_om_says_when_the_version_is_unknown(kit, tmp_path, monkeypatch):
    make, model, record = kit
    make(None)
    r = run(model, "-o", tmp_path / "m")
    assert r.exit_code == 0 and "CANN version unknown" in r.output and "not checked" in r.output


def test_doctor_shows_the_cann_version(kit, tmp_path):
    make, model, record = kit
    root = make("8.0.RC1")
    atc = next(r for r in diagnose(system_roots=()) if r["name"] == "atc")
    assert atc["found"] and atc["version"] == "8.0.RC1"
    assert atc["detail"].startswith(f"{root / 'bin/atc'} (via $ASCEND_TOOLKIT_HOME); CANN 8.0.RC1 (")
    r = CliRunner().invoke(app, ["doctor", "--json"])
    assert r.exit_code == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["atc"]["version"] == "8.0.RC1" and rows["omg"]["version"] is None
