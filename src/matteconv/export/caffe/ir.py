"""The converter's intermediate form: a flat list of Caffe layers with their weights, before any protobuf.
Lowering produces it, the writer serialises it, tests read it."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Layer:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: dict = field(default_factory=dict)  # LayerParameter fields, e.g. {"convolution_param": {...}}
    blobs: list[np.ndarray] = field(default_factory=list)  # float32, Caffe's layout
    source: str = ""  # the torch module path / op it came from (for errors and inspect)


@dataclass
class Net:
    name: str
    layers: list[Layer]
    inputs: dict[str, tuple[int, ...]]  # input blob name -> shape, in feed order
    output: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # blob -> NCHW, where lowering knew it
    rewrites: list[str] = field(default_factory=list)  # exact rewrites for Ascend rules (export/caffe/depthwise_split.py)
    example_output: object = None  # the torch model's output (a tensor) on the inputs shapes came from (convert)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(layer.type for layer in self.layers).items()))

    def num_params(self) -> int:
        return sum(int(b.size) for layer in self.layers for b in layer.blobs)
