"""torch module -> Net (capture + lower), independent of files and checkpoints, so tests can convert toy
modules through exactly the code path the export uses."""
from __future__ import annotations

from torch import nn

from .capture import capture
from .ir import Net
from .lower import lower
from .targets import get_target


def convert(model: nn.Module, inputs: dict[str, tuple[int, ...]], target: str = "bvlc",
            names: dict[str, str] | None = None) -> Net:
    """`inputs`: forward argument -> shape. Caffe input names: `names` if given, else `input` for a single
    input (what atc's --input_shape="input:..." and our runners use), else the argument names."""
    gm = capture(model, inputs)
    if names is None:
        names = {"input": "input"} if len(inputs) == 1 else {}
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    args = list(inputs)
    mapping = {ph: (names.get(arg) or ("input" if len(args) == 1 else arg)) for ph, arg in zip(placeholders, args)}
    return lower(gm, get_target(target), mapping, type(model).__name__)
