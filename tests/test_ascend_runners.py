"""On-device runners with a stand-in msame: arguments, raw input files, outputs read back."""
from __future__ import annotations

import numpy as np
import pytest

import fakes
from matteconv.ascend.runners import Runner, find_runner, read_outputs, run_om
from matteconv.errors import MatteconvError


def test_find_runner(tmp_path):
    assert find_runner({"PATH": str(tmp_path)}, prefer="msame") is None
    m = fakes.install("msame", tmp_path / "bin")
    assert find_runner({"PATH": str(tmp_path / "bin")}) == Runner("msame", (str(m),))
    a = fakes.install("msame", tmp_path / "bin2", as_name="ais_bench")
    assert find_runner({"PATH": str(tmp_path / "bin2")}, prefer="ais_bench") in (
        Runner("ais_bench", (str(a),)), Runner("ais_bench", (fakes.sys.executable, "-m", "ais_bench")))


def test_run_om_round_trip(tmp_path):
    m = fakes.install("msame", tmp_path / "bin")
    om = tmp_path / "model dir" / "m.om"
    om.parent.mkdir()
    om.write_bytes(b"FAKE-OM")
    frame = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(1, 2, 4, 3)  # AIPP input: NHWC uint8
    prev = np.full((1, 1, 2, 4), 0.25, np.float32)
    outs = run_om(om, [frame, prev], tmp_path / "work", Runner("msame", (str(m),)),
                  output_shapes=[(1, 2, 4, 3), (1,)])
    assert np.array_equal(outs[0], frame.astype(np.float32) * 2 + 1)
    assert outs[1].tolist() == [2.0]
    assert (tmp_path / "work/input_0.bin").read_bytes() == frame.tobytes()
    assert (tmp_path / "work/input_1.bin").stat().st_size == 8 * 4
    # a second run replaces the old outputs instead of mixing them in
    outs = run_om(om, [frame[:, :1]], tmp_path / "work", Runner("msame", (str(m),)))
    assert len(outs) == 1 and outs[0].shape == (12,)


def test_run_om_errors(tmp_path):
    m = fakes.install("msame", tmp_path / "bin")
    with pytest.raises(MatteconvError, match="not found"):
        run_om(tmp_path / "none.om", [], tmp_path / "w", Runner("msame", (str(m),)))
    om = tmp_path / "m.om"
    om.write_bytes(b"x")
    with pytest.raises(MatteconvError, match="dtype float64"):
        run_om(om, [np.zeros(3)], tmp_path / "w", Runner("msame", (str(m),)))
    bad = Runner("msame", (str(m), "--extra", "1"))
    with pytest.raises(MatteconvError, match=r"msame exited with code 2 .*unexpected options"):
        run_om(om, [np.zeros(3, np.uint8)], tmp_path / "w", bad)


def test_read_outputs_orders_by_index(tmp_path):
    d = tmp_path / "o" / "20240101"
    d.mkdir(parents=True)
    for k in (10, 2, 0):
        np.save(d / f"input_0_{k}.npy", np.array([k], np.float32))
    assert [int(a[0]) for a in read_outputs(tmp_path / "o", "ais_bench")] == [0, 2, 10]
    with pytest.raises(MatteconvError, match="wrote no"):
        read_outputs(tmp_path / "o", "msame")
