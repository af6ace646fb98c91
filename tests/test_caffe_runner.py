"""The pycaffe child process: Caffe's aborts become MatteconvErrors with Caffe's message; the caller lives."""
from __future__ import annotations

import os

import numpy as np
import pytest

from matteconv.errors import MatteconvError
from matteconv.export.caffe.runner import CaffeBackend, CaffeWorker, caffe_message

import caffe  # noqa: E402,F401  (real pycaffe is required: make install builds it; no skip)

INPUT = 'layer { name: "input" type: "Input" top: "input" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'


def write(tmp_path, text: str):
    path = tmp_path / "net.prototxt"
    path.write_text(INPUT + text)
    return path


def test_unknown_layer_type_is_an_error_not_a_crash(tmp_path):
    path = write(tmp_path, 'layer { name: "up" type: "Interp" bottom: "input" top: "up" }\n')
    with pytest.raises(MatteconvError, match=r"Caffe aborted: .*Unknown layer type: Interp"):
        CaffeWorker(path)
    assert os.getpid()  # still here


def test_shape_mismatch_is_an_error_with_caffes_check(tmp_path):
    path = write(tmp_path, 'layer { name: "half" type: "Pooling" bottom: "input" top: "half" '
                           'pooling_param { pool: AVE kernel_size: 2 stride: 2 } }\n'
                           'layer { name: "cat" type: "Concat" bottom: "input" bottom: "half" top: "cat" }\n')
    with pytest.raises(MatteconvError, match="Check failed") as e:
        CaffeWorker(path)
    assert "\n" not in str(e.value)


def test_prototxt_syntax_error_names_the_field(tmp_path):
    path = write(tmp_path, 'layer { name: "r" type: "ReLU" bottom: "input" top: "r" no_such_field: 1 }\n')
    with pytest.raises(MatteconvError, match="no_such_field"):
        CaffeWorker(path)


def test_worker_survives_across_runs_and_python_errors(tmp_path):
    path = write(tmp_path, 'layer { name: "r" type: "ReLU" bottom: "input" top: "r" }\n')
    worker = CaffeWorker(path)
    try:
        pid = worker.proc.pid
        x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
        for _ in range(3):
            out = worker.run({"input": x})["outputs"]["r"]
            np.testing.assert_array_equal(out, np.maximum(x, 0))
        with pytest.raises(MatteconvError, match="pycaffe: KeyError"):
            worker.run({"nope": x})
        worker.run({"input": x})
        assert worker.proc.pid == pid and worker.proc.poll() is None
    finally:
        worker.close()
    assert worker.proc.poll() is not None


def test_backend_needs_the_weights(tmp_path):
    path = write(tmp_path, 'layer { name: "r" type: "ReLU" bottom: "input" top: "r" }\n')
    with pytest.raises(MatteconvError, match="weights not found"):
        CaffeBackend(path)


def test_caffe_message_keeps_fatal_line_only():
    log = ("I0101 00:00:00.000 1 net.cpp:1] Creating layer x\n"
           "F0101 00:00:00.000 1 eltwise_layer.cpp:34] Check failed: a == b (1 vs. 2)\n"
           "*** Check failure stack trace: ***\n    @ 0x7f abort\n")
    assert caffe_message(log) == "Check failed: a == b (1 vs. 2)"
    # glog 0.7 writes the year into the prefix (what this machine's libgoogle-glog does)
    log = ("WARNING: Logging before InitGoogleLogging() is written to STDERR\n"
           "F20261201 21:00:00.000000 1 db.cpp:20] Unknown database backend\n*** Check failure stack trace: ***\n")
    assert caffe_message(log) == "Unknown database backend"
