"""What this machine can check: Python runtimes by import, Ascend tools by discovery."""
from __future__ import annotations

import importlib
import os

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
    """Ascend tools through the same discovery `om` and `verify --om` use."""
    from .ascend.discover import find_tool
    from .ascend.runners import find_runner

    out = []
    for name, enables in (("atc", "building .om from ONNX/Caffe (CANN)"), ("omg", "building .om from Caffe (old DDK)")):
        tool = find_tool(name)
        out.append((name, f"{tool.path} (via {tool.source})" if tool else None, enables))
    for kind in ("msame", "ais_bench"):
        runner = find_runner(prefer=kind)
        out.append((kind, " ".join(runner.prefix) if runner else None, "the om stage on an Ascend device"))
    return out


def diagnose() -> list[dict]:
    rows = []
    for label, module, enables in PACKAGES:
        found, detail = _version(module)
        rows.append({"name": label, "found": found, "detail": detail, "enables": enables})
    for name, path, enables in _tools():
        rows.append({"name": name, "found": path is not None, "detail": path or "not found", "enables": enables})
    return rows
