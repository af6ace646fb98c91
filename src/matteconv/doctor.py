"""What this machine can check: Python runtimes by import, Ascend tools by discovery."""
from __future__ import annotations

import importlib
import os
import shutil

PACKAGES = [
    ("torch", "torch", "checkpoints, golden mattes, the torch stage"),
    ("onnx", "onnx", "ONNX export and checks"),
    ("onnxruntime", "onnxruntime", "the onnx and aipp stages"),
    ("onnxsim", "onnxsim", "ONNX simplification"),
    ("pycaffe", "caffe", "Caffe export checks and the caffe stage"),
]


def _version(module: str) -> tuple[bool, str]:
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # a broken install is reported, not raised
        return False, f"not importable ({type(e).__name__})"
    return True, str(getattr(mod, "__version__", "installed"))


def _tools() -> list[tuple[str, str | None, str]]:
    try:
        from .ascend.discover import find_tool
    except ImportError:
        find_tool = None
    out = []
    for name, enables in (("atc", "building .om from ONNX/Caffe (CANN)"), ("omg", "building .om from Caffe (old DDK)"),
                          ("msame", "the om stage on a device"), ("ais_bench", "the om stage on a device")):
        path = None
        if find_tool is not None:
            try:
                path = find_tool(name)
            except Exception:  # discovery problems mean "not found" here
                path = None
        path = path or shutil.which(name)
        out.append((name, str(path) if path else None, enables))
    return out


def diagnose() -> list[dict]:
    rows = []
    for label, module, enables in PACKAGES:
        found, detail = _version(module)
        rows.append({"name": label, "found": found, "detail": detail, "enables": enables})
    for name, path, enables in _tools():
        rows.append({"name": name, "found": path is not None, "detail": path or "not found", "enables": enables})
    return rows
