"""PyTorch -> ONNX: `export_onnx` (exporter.py), the graph helpers every pass shares (graph.py) and the passes
(passes/), one exact rewrite per module in one ordered registry.

The exporter's names are loaded on first use, so `matteconv.export.onnx.graph` and `.passes` import without torch.
"""
from __future__ import annotations

import importlib

_EXPORTER = ("OnnxExport", "RUNTIMES", "SUPPORTED_OPSETS", "check_ascend_safe", "export_onnx", "run_float64")


def __getattr__(name: str):
    if name in _EXPORTER:
        return getattr(importlib.import_module(f"{__name__}.exporter"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTER)
