"""torch module -> Net (capture + lower), independent of files and checkpoints, so tests can convert toy
modules through exactly the code path the export uses."""
from __future__ import annotations

import torch
from torch import nn

from .capture import capture
from .ir import Net
from .lower import lower
from .targets import get_target
from .depthwise_split import rewrite_caffe

# Targets compiled by Ascend tools, whose depthwise buffer rule the export rewrites for (CANN's Convolution page;
# the Atlas 200 DK page of the DDK era states the same limit). bvlc has no such rule.
RULE_TARGETS = ("ascend", "ddk")


def convert(model: nn.Module, inputs: dict[str, tuple[int, ...]], target: str = "bvlc",
            names: dict[str, str] | None = None, example: tuple[torch.Tensor, ...] | None = None) -> Net:
    """`inputs`: forward argument -> shape. Caffe input names: `names` if given, else `input` for a single
    input (what atc's --input_shape="input:..." and our runners use), else the argument names. `example`:
    the tensors the shapes are taken from (capture.py); the model's output on them is `net.example_output`."""
    gm = capture(model, inputs, example)
    if names is None:
        names = {"input": "input"} if len(inputs) == 1 else {}
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    args = list(inputs)
    mapping = {ph: (names.get(arg) or ("input" if len(args) == 1 else arg)) for ph, arg in zip(placeholders, args)}
    tgt = get_target(target)
    net = lower(gm, tgt, mapping, type(model).__name__)
    net.example_output = gm.meta["example_output"]
    if tgt.name in RULE_TARGETS:
        net.rewrites = rewrite_caffe(net, tgt.accepts)
    return net
