"""`matteconv profile`: what an .om built from an ONNX or Caffe model costs on the Ascend 310, predicted on the
host, layer by layer, with the rules that cost speed.

hardware.py (SoC constants with sources, fitted constants), graph.py (the model as layers with shapes), cost.py
(per-op engine, time and bound), walk.py (the graph walk, AIPP and TransData, total, fps search), speed.py (the
speed warnings), report.py (tables). Calibration: published.json (batch-1 device times with sources),
fitted.json (the fitted constants and leave-one-out errors), scripts/profile_calibrate.py (re-fits them).
"""
from .graph import Graph, Layer, load_graph
from .hardware import Fitted, Soc, get_soc
from .walk import FpsAnswer, Profile, largest_size_for_fps, precisions_for, profile_graph, profile_model

__all__ = ["Fitted", "FpsAnswer", "Graph", "Layer", "Profile", "Soc", "get_soc", "largest_size_for_fps",
           "load_graph", "precisions_for", "profile_graph", "profile_model"]
