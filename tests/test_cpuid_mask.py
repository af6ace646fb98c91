"""scripts/cpuid-mask.c (`make bench-avx2`, `make test-portable`): under it, onnxruntime, PyTorch and numpy choose
the kernels of the smaller CPU, and a real segfault still ends the process. Runs only on a CPU with AVX-512 and
CPUID faulting (the AVX-512 kind); elsewhere there is nothing to mask, or no way to, and the skip says which."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# loaded from its path: putting scripts/ on sys.path would let its bench*.py shadow other imports in this worker
_spec = importlib.util.spec_from_file_location("cpuid_mask", ROOT / "scripts" / "cpuid_mask.py")
cpuid_mask = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpuid_mask)

WHY = cpuid_mask.why_unmasked("avx2", cpuid_mask.this_cpu_flags())
needs_masking = pytest.mark.skipif(WHY is not None, reason=f"cannot mask here: {WHY}")

# NCHWc block size MLAS chose: a 1x1 Conv 24 -> 24 is stored padded to whole blocks in the optimised graph (16
# channels with AVX-512, 8 with AVX2 or AVX alone)
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


def probe(tmp_path: Path, preload: Path | None, keep: str = "avx2") -> list[str]:
    env = {"LD_PRELOAD": str(preload), "CPUID_MASK_KEEP": keep} if preload else {}
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", PROBE, str(tmp_path / "opt.onnx")],
                         capture_output=True, text=True, check=True, env={**_base_env(), **env}, timeout=120)
    return out.stdout.split()


# what `make test-portable` sets to lower the libraries' kernels: the probe's unmasked baseline runs without them
LOWERING = ("LD_PRELOAD", "CPUID_MASK_KEEP", cpuid_mask.MARK, "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
            "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "OPENCV_CPU_DISABLE")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LOWERING}


@pytest.mark.slow  # end to end (issue 38: tier 1 within 300 s on the AVX2 EPYC); tier 2 runs it
@needs_masking
def test_libraries_pick_smaller_kernels_under_the_mask(tmp_path):
    lib = cpuid_mask.build(tmp_path)
    # without it: AVX-512 everywhere, MLAS blocks of 16 channels (24 padded to 32)
    assert probe(tmp_path, None) == ["AVX512", "1", "1", "32"]
    # with it: ATen's AVX2 kernels, numpy without AVX512F, MLAS blocks of 8 (24 stays 24); faulthandler's own
    # SIGSEGV handler (-X faulthandler) is chained behind the mask's, not put in front of it
    assert probe(tmp_path, lib) == ["AVX2", "0", "1", "24"]
    # keeping AVX only (make test-portable): ATen's default kernels, numpy without AVX2, MLAS's 8-channel blocks
    assert probe(tmp_path, lib, "avx") == ["DEFAULT", "0", "0", "24"]

@needs_masking
def test_a_real_segfault_still_ends_the_process(tmp_path):
    lib = cpuid_mask.build(tmp_path)
    for extra in ([], ["-X", "faulthandler"]):
        proc = subprocess.run([sys.executable, *extra, "-c", "import ctypes; ctypes.string_at(0)"],
                              capture_output=True, text=True, env={**_base_env(), "LD_PRELOAD": str(lib)}, timeout=60)
        assert proc.returncode == -11, (extra, proc.returncode, proc.stderr[-300:])
    assert "Segmentation fault" in proc.stderr  # faulthandler's report: its handler ran after the mask's


def test_why_unmasked_names_the_reason():
    amd = {"avx", "avx2", "fma"}  # the AMD EPYC kind: AVX2 + FMA, no AVX-512; its hypervisor's CPUID faulting unknown
    assert cpuid_mask.why_unmasked("avx2", amd) == "this CPU has nothing above AVX2 to hide"
    assert "cannot fault CPUID" in cpuid_mask.why_unmasked("avx", amd)
    assert cpuid_mask.why_unmasked("avx", amd | {"cpuid_fault"}) is None
    assert cpuid_mask.why_unmasked("avx2", amd | {"avx512f", "cpuid_fault"}) is None


def test_masked_env_drops_what_opencv_would_warn_about(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCV_CPU_DISABLE", "AVX2,FMA3,AVX,FP16")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    env = cpuid_mask.masked_env(tmp_path / "cpuid-mask.so", "avx")
    assert (env["OPENCV_CPU_DISABLE"], env["CPUID_MASK_KEEP"]) == ("AVX", "avx")
    assert env["LD_PRELOAD"] == str(tmp_path / "cpuid-mask.so")
    assert cpuid_mask.masked_env(tmp_path / "m.so", "avx2")["OPENCV_CPU_DISABLE"] == "AVX2,FMA3,AVX,FP16"
