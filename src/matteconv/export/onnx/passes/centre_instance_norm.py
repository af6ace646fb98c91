"""`centre-instance-norm`: every ONNX `InstanceNormalization` input centred first: `IN(x) -> IN(x - ReduceMean(x))`.

Why: onnxruntime's CPU InstanceNormalization computes the variance from fp32 sums in a way that cancels
catastrophically when a channel's mean is large against its spread (docs/design.md section 9, measured: on a
1x4x144x256 tensor with mean 20 / std 0.05 it is 2.1e-4 from float64 where PyTorch fp32 is 5.8e-6; mean 50 /
std 0.01: 2.5e-3). A flat camera frame (a grey wall, a lens cap) makes exactly such channels inside MODNet's
IBNorm: the trained reference's export at 288x512 was 3.5e-3 from float64 on uniform grey 128 (torch: 4.8e-5).
Skipping it (`--skip-pass centre-instance-norm`) keeps onnxruntime's inexact InstanceNormalization on flat
inputs: for tests and `compare` demonstrations only.

Exact in math: InstanceNorm is shift-invariant per channel, IN(x - c) = IN(x) for any per-channel constant c,
so subtracting the channel mean first changes nothing but the rounding. In fp32 the centred values are small,
the variance no longer cancels, and the mean's own rounding (ReduceMean) is a per-channel constant that the
InstanceNormalization removes again.

On Ascend (atc, `--framework=5`) the InstanceNormalization stays one op, mapped as before; the two ops added
are in CANN's ONNX operator list: ReduceMean (attribute `axes`, opset 8-16,
https://www.hiascend.com/document/detail/en/canncommercial/850/API/aolapi/atlasoxol_09_0123.html) and Sub
(opset 8-15, https://www.hiascend.com/document/detail/en/canncommercial/850/API/aolapi/atlasoxol_09_0159.html).
`axes` is written as an attribute, which is ONNX's form up to opset 17 (opset 18 moved it to an input).

Node names keep the InstanceNormalization's module scope (`/.../inorm/ReduceMean_centre`), so `compare`
counts them inside the same PyTorch module and the InstanceNormalization stays that module's output.
"""
from __future__ import annotations

import onnx
from onnx import helper

from ..graph import producers
from .base import Pass

CENTRE_SUFFIXES = ("_centre_mean", "_centre")


def _scoped(name: str, op: str) -> str:
    """'/a/b/InstanceNormalization' -> '/a/b/<op>' (same scope); unscoped names get a suffix."""
    head, sep, _ = name.rpartition("/")
    return f"{head}{sep}{op}" if sep else f"{name}_{op}"


def centre_instance_norms(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every InstanceNormalization whose input is not yet centred; return how many.

    Shapes: the input is N x C x H x W (float32); the mean is N x C x 1 x 1 (keepdims=1) and broadcasts in Sub.
    Running it twice adds nothing (an input already produced by our Sub is left alone).
    """
    graph = model.graph
    producer = producers(graph)
    order: list[onnx.NodeProto] = []
    n = 0
    for node in graph.node:
        if node.op_type == "InstanceNormalization":
            x = node.input[0]
            src = producer.get(x)
            if not (src is not None and src.op_type == "Sub" and src.output[0].endswith(CENTRE_SUFFIXES[1])):
                base = node.output[0]
                mean, centred = base + CENTRE_SUFFIXES[0], base + CENTRE_SUFFIXES[1]
                order.append(helper.make_node("ReduceMean", [x], [mean], name=_scoped(node.name, "ReduceMean_centre"),
                                              axes=[2, 3], keepdims=1))
                order.append(helper.make_node("Sub", [x, mean], [centred], name=_scoped(node.name, "Sub_centre")))
                node.input[0] = centred
                n += 1
        order.append(node)
    if n:
        del graph.node[:]
        graph.node.extend(order)
    return n


PASS = Pass(name="centre-instance-norm", profiles=frozenset({"any", "onnxruntime"}),
            apply=lambda model, ctx: centre_instance_norms(model),
            exact="InstanceNorm is shift-invariant per channel: IN(x - mean(x)) = IN(x)")
