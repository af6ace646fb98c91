"""Graph capture: torch.fx symbolic trace of the model with MODNet's composite norms kept whole, plus the
shape of every value from one real forward (an fx Interpreter that records each node's shape). No torch
function is patched."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.fx as fx
from torch import nn

from ...errors import MatteconvError
from ...model.modnet import IBNorm, SEBlock

# Kept as single nodes: their lowering needs the whole module (IBNorm's channel split, SE's broadcast).
LEAVES = (IBNorm, SEBlock, nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.Linear)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, qualname)


def capture(model: nn.Module, inputs: dict[str, tuple[int, ...]],
            example: tuple[torch.Tensor, ...] | None = None) -> fx.GraphModule:
    """Trace `model` (eval) for the named inputs (forward argument name -> shape); arguments not named are
    specialised to None. Every node gets meta['tensor_meta'] with its shape, from one forward on `example`
    (float32 tensors of those shapes, in that order; zeros if None), whose output is kept in
    meta['example_output'] (the export's PyTorch reference without a second forward)."""
    model = model.eval()
    import inspect

    params = list(inspect.signature(model.forward).parameters)
    unknown = [n for n in inputs if n not in params]
    if unknown:
        raise MatteconvError(f"{type(model).__name__}.forward has no argument {unknown[0]!r}")
    concrete = {p: None for p in params if p not in inputs}
    try:
        graph = _Tracer().trace(model, concrete_args=concrete or None)
    except Exception as e:  # fx raises TraceError, TypeError, ... on data-dependent control flow
        raise MatteconvError(f"cannot capture {type(model).__name__} with torch.fx: {e}") from None
    gm = fx.GraphModule(model, graph)
    _drop_specialised_inputs(gm)
    if example is None:
        example = tuple(torch.zeros(inputs[n.target]) for n in gm.graph.nodes if n.op == "placeholder")
    with torch.no_grad():
        gm.meta["example_output"] = _ShapeRecorder(gm).run(*example)
    return gm


class TensorShape(NamedTuple):
    shape: torch.Size
    dtype: torch.dtype


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph and stores meta['tensor_meta'] = TensorShape on every node whose value is a tensor.
    torch's ShapeProp does the same, but its first use imports torch.fx.experimental.symbolic_shapes and sympy
    (0.4 s of every export, measured) for fake-tensor features the capture does not use."""

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = TensorShape(result.shape, result.dtype)
        return result


def _drop_specialised_inputs(gm: fx.GraphModule) -> None:
    """fx guards arguments fixed to None with an assert node; those inputs do not exist in the export."""
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert_is_none":
            gm.graph.erase_node(node)
    for node in list(gm.graph.nodes):
        if node.op == "placeholder" and not node.users:
            gm.graph.erase_node(node)
    gm.recompile()


def shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def scope(node: fx.Node) -> str:
    """Module path a node belongs to: its own target for modules, the enclosing module for functions."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    return last[0] if isinstance(last, tuple) else str(last)
