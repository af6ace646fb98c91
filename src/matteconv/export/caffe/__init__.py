"""PyTorch MODNet -> Caffe (prototxt + caffemodel) with exact lowerings, per-target layer tables and a
pycaffe check of every export. Layout: capture (torch.fx) -> lower (the table) -> writer -> runner."""
from .export import CaffeExport, export_caffe
from .targets import TARGETS, unsupported_layers

__all__ = ["CaffeExport", "export_caffe", "TARGETS", "unsupported_layers"]
