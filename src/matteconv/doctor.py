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


def _tools(env=None, system_roots=None) -> list[dict]:
    """Ascend tools through the same discovery `om` and `verify --om` use; compilers with their CANN/DDK
    version (what `om` checks --soc-version against)."""
    from .ascend.cann import toolkit_version
    from .ascend.discover import find_tool
    from .ascend.runners import find_runner

    kw = {} if system_roots is None else {"system_roots": system_roots}
    rows = []
    for name, enables in (("atc", "building .om from ONNX/Caffe (CANN)"), ("omg", "building .om from Caffe (old DDK)")):
        tool = find_tool(name, env, **kw)
        row = {"name": name, "found": tool is not None, "detail": "not found", "enables": enables, "version": None}
        if tool:
            version = toolkit_version(tool)
            kit = "CANN" if name == "atc" else "DDK"
            row.update(detail=f"{tool.path} (via {tool.source}); {kit} {version}", version=version.version)
        rows.append(row)
    for kind in ("msame", "ais_bench"):
        runner = find_runner(env, prefer=kind)
        rows.append({"name": kind, "found": runner is not None,
                     "detail": " ".join(runner.prefix) if runner else "not found",
                     "enables": "the om stage on an Ascend device"})
    return rows


def _official(env=None) -> dict:
    """Where the official MODNet is and whether it is the pinned file (matteconv.official.status)."""
    from .official import status

    s = status(env)
    return {"name": "official MODNet", "found": s["matches"], "detail": s["detail"],
            "enables": "import, golden/real, every measurement on the model users deploy", "onnx": s["onnx"],
            "checkpoint": s["checkpoint"], "sha256_matches": s["matches"]}


def diagnose(env=None, system_roots=None) -> list[dict]:
    rows = []
    for label, module, enables in PACKAGES:
        found, detail = _version(module)
        rows.append({"name": label, "found": found, "detail": detail, "enables": enables})
    return rows + [_official(env)] + _tools(env, system_roots)
