"""scripts/cpuid-avx2.c (`make bench-avx2`): under it, onnxruntime, PyTorch and numpy choose their AVX2 kernels,
and a real segfault still ends the process. Runs only on a CPU with AVX-512 and CPUID faulting (the AVX-512 kind);
elsewhere there is nothing to mask, and the test says so."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import avx2_kernels  # noqa: E402

FLAGS = avx2_kernels.cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
pytestmark = [
    pytest.mark.skipif(not any(f.startswith("avx512") for f in FLAGS), reason="no AVX-512 on this CPU: nothing to mask"),
    pytest.mark.skipif("cpuid_fault" not in FLAGS, reason="no CPUID faulting on this CPU or hypervisor"),
]

# NCHWc block size MLAS chose: a 1x1 Conv 24 -> 24 is stored padded to whole blocks in the optimised graph
PROBE = r"""
import sys, numpy as np, onnx, onnxruntime as ort, torch
from onnx import helper as h, numpy_helper as nh, TensorProto as T
w = nh.from_array(np.ones((24, 24, 1, 1), np.float32), "w")
g = h.make_graph([h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], "g",
                 [h.make_tensor_value_info("x", T.FLOAT, [1, 24, 8, 8])],
                 [h.make_tensor_value_info("y", T.FLOAT, [1, 24, 8, 8])], [w])
so = ort.SessionOptions(); so.optimized_model_filepath = sys.argv[1]; so.log_severity_level = 3
ort.InferenceSession(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString(), so,
                     providers=["CPUExecutionProvider"])
m = onnx.load(sys.argv[1])
dims = [list(i.dims) for i in m.graph.initializer if len(i.dims) == 4]
feats = np._core._multiarray_umath.__cpu_features__
print(torch.backends.cpu.get_cpu_capability(), int(feats["AVX512F"]), int(feats["AVX2"]), dims[0][0])
"""


def probe(tmp_path: Path, preload: Path | None) -> list[str]:
    env = {"LD_PRELOAD": str(preload)} if preload else {}
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", PROBE, str(tmp_path / "opt.onnx")],
                         capture_output=True, text=True, check=True, env={**_base_env(), **env}, timeout=120)
    return out.stdout.split()


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def test_libraries_pick_avx2_kernels_under_the_mask(tmp_path):
    lib = avx2_kernels.build(tmp_path)
    # without it: AVX-512 everywhere, MLAS blocks of 16 channels (24 padded to 32)
    assert probe(tmp_path, None) == ["AVX512", "1", "1", "32"]
    # with it: ATen's AVX2 kernels, numpy without AVX512F, MLAS blocks of 8 (24 stays 24); faulthandler's own
    # SIGSEGV handler (-X faulthandler) is chained behind the mask's, not put in front of it
    assert probe(tmp_path, lib) == ["AVX2", "0", "1", "24"]


def test_a_real_segfault_still_ends_the_process(tmp_path):
    lib = avx2_kernels.build(tmp_path)
    for extra in ([], ["-X", "faulthandler"]):
        proc = subprocess.run([sys.executable, *extra, "-c", "import ctypes; ctypes.string_at(0)"],
                              capture_output=True, text=True, env={**_base_env(), "LD_PRELOAD": str(lib)}, timeout=60)
        assert proc.returncode == -11, (extra, proc.returncode, proc.stderr[-300:])
    assert "Segmentation fault" in proc.stderr  # faulthandler's report: its handler ran after the mask's
