"""The `bvlc` Caffe export loads and matches in OpenCV DNN 4.x (what most boards ship; OpenCV 5 has no Caffe
importer), in a child process with the OpenCV 4.x that scripts/install.sh puts beside the venv's 5.x."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matteconv.export.caffe import export_caffe
from matteconv.model.checkpoint import Checkpoint

OPENCV4 = Path(sys.prefix) / "opencv4"  # scripts/install.sh: pip install --target $VENV/opencv4 "opencv<5"
RUNNER = Path(__file__).with_name("interop") / "opencv_caffe_run.py"
SIZE = (128, 128)  # small for speed: judged against a float64 torch run at this size (conftest)


@pytest.mark.slow  # end to end: tier 2 (issue 38)
def test_bvlc_export_loads_and_matches_in_opencv4(golden_photos_128, tmp_path):
    assert (OPENCV4 / "cv2").is_dir(), f"OpenCV 4.x missing in {OPENCV4}: run `make install`"
    model, inputs, refs, tol = golden_photos_128
    ckpt = Checkpoint(model, tmp_path / "golden.ckpt", "golden", model.in_channels)
    res = export_caffe(ckpt, tmp_path / "bvlc", "bvlc", SIZE)
    assert "Reduction" not in res.layer_counts
    np.savez(tmp_path / "in.npz", **inputs)
    proc = subprocess.run([sys.executable, str(RUNNER), str(res.prototxt), str(res.caffemodel),
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(OPENCV4)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("4."), proc.stdout
    with np.load(tmp_path / "out.npz") as out:
        for name, ref in refs.items():
            d = np.abs(out[name].astype(np.float64) - ref)
            assert d.max() < tol["max_abs"] and d.mean() < tol["mean_abs"], (name, d.max(), d.mean())
