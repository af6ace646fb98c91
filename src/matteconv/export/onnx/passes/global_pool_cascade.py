"""`global-pool-cascade`: a global average pool too large for Ascend's AI Core pool, as a cascade of pools within it.

Why: atc runs an AvgPool whose window is over 256 elements (or whose stride is over 63) on the AI CPU, warning
W11001 (the rule, the plan and where it pays: export/pool_plan.py; `matteconv profile` warns avgpool-aicpu on the
same rule). MODNet's SE block pools its 1/32-scale map globally: 16x16 = 256 elements at 512x512 (AI Core),
22x40 = 880 at 704x1280, predicted 15.6 ms on the AI CPU against 0.064 ms for the cascade (profile's cost model).

The rewrite, for a GlobalAveragePool (or an AveragePool whose window is its whole unpadded map) on an N x C x H x
W input of static shape: the AveragePool stages of `pool_plan.plan_cascade` (kernel = stride, each dividing the
map, each within the AI Core's limits), then the original node, now pooling the small map left globally (its
name, type and output kept). 22x40: AveragePool 11x20 to 2x2, then GlobalAveragePool over 2x2. When no cascade of
evenly dividing windows exists (a side with a large prime factor), the pool becomes one ReduceMean over axes 2
and 3 (keepdims), which CANN's ONNX operator list has (atlasoxol_09_0123) and the export already uses for every
InstanceNorm (centre-instance-norm).

Only where the prediction says it pays (`pool_plan.cascade_pays`, held to profile's cost model by
tests/test_pool_cascade.py): a pool with too few elements to pay for the cascade's extra kernel launches is left
on the AI CPU. A pool within the limits (every MODNet export up to 512x512, and 384x384, the default) is left
alone, and the pass then adds nothing to the file: its count is recorded in the `passes` metadata only when it
rewrote something (`Pass.record_zero=False`), so those files stay byte-identical to what the export wrote before
the pass existed. Each rewrite is one line in `rule_rewrites`.

Exact: every window divides the map, so every block holds the same number of elements, and the mean of k
equal-sized block means is the mean of all the elements. In floating point the cascade sums in short runs
instead of one long one: its error bound is (sum of the stages' windows) ulps of the mean of |x| instead of H*W
(tests/test_pool_cascade.py measures it against float64). ReduceMean computes the same mean by definition.
"""
from __future__ import annotations

import onnx
from onnx import helper

from ...pool_plan import AVGPOOL_AICPU_STRIDE, AVGPOOL_AICPU_WINDOW, cascade_pays, plan_cascade
from ..graph import attr, op_name
from .base import Pass, PassContext


def on_aicpu(node: onnx.NodeProto, shape: tuple[int, ...]) -> bool:
    """Whether atc runs this global average pool on the AI CPU (W11001: window over 256 elements; a strided
    AveragePool over its whole map also by its stride; pool_plan.py)."""
    if shape[2] * shape[3] > AVGPOOL_AICPU_WINDOW:
        return True
    return node.op_type == "AveragePool" and max(attr(node, "strides", [1, 1])) > AVGPOOL_AICPU_STRIDE


def _is_global(node: onnx.NodeProto, shape: tuple[int, ...]) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type != "AveragePool" or len(shape) != 4:
        return False
    return (list(attr(node, "kernel_shape", [])) == list(shape[2:]) and not any(attr(node, "pads", [0]))
            and attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", b"VALID", "NOTSET", "VALID"))


def cascade_global_pools(model: onnx.ModelProto, ctx: PassContext) -> dict[str, int]:
    """Rewrite, in place, every global average pool that atc would put on the AI CPU and the cascade (or
    ReduceMean) is predicted to beat; one note per rewrite in ctx.notes; return how many of each form
    ({"cascade": n, "reduce-mean": m})."""
    view = ctx.view
    graph = model.graph
    replaced: dict[int, list[onnx.NodeProto]] = {}
    counts = {"cascade": 0, "reduce-mean": 0}
    nodes = list(graph.node)  # held until replace_nodes, which finds them by id
    names = {n.name for n in nodes}
    for node in nodes:
        if node.op_type not in ("GlobalAveragePool", "AveragePool"):
            continue
        shape = view.static_shape(node.input[0])
        if shape is None or len(shape) != 4 or not _is_global(node, shape):
            continue
        n, c, h, w = shape
        if not on_aicpu(node, shape):
            continue
        plan = plan_cascade(h, w)
        if not cascade_pays(n * c * h * w, plan):
            continue
        scope = node.name.rpartition("/")[0] + "/" if "/" in node.name else node.name + "_"
        new: list[onnx.NodeProto] = []
        if plan is None:
            new.append(helper.make_node("ReduceMean", [node.input[0]], [node.output[0]],
                                        name=op_name(f"{node.name}_mean", "ReduceMean"), axes=[2, 3], keepdims=1))
            how = "ReduceMean over axes 2, 3 (no cascade of evenly dividing windows)"
            counts["reduce-mean"] += 1
        else:
            x, hh, ww = node.input[0], h, w
            for i, (a, b) in enumerate(plan):
                out = f"{node.output[0]}_cascade{i}"
                name = f"{scope}AveragePool_cascade{i}"
                if name in names:  # a second global pool in the same module scope
                    name = f"{node.name}_AveragePool_cascade{i}"
                names.add(name)
                new.append(helper.make_node("AveragePool", [x], [out], name=name, kernel_shape=[a, b],
                                            strides=[a, b]))
                x, hh, ww = out, hh // a, ww // b
            last = onnx.NodeProto()
            last.CopyFrom(node)
            last.input[0] = x
            if last.op_type == "AveragePool":  # the whole (now smaller) map, as before
                del last.attribute[:]
                last.attribute.extend([helper.make_attribute("kernel_shape", [hh, ww]),
                                       helper.make_attribute("strides", [1, 1])])
            new.append(last)
            how = " + ".join([f"AveragePool {a}x{b} stride {a}x{b}" for a, b in plan] + [f"global {hh}x{ww}"])
            counts["cascade"] += 1
        replaced[id(node)] = new
        ctx.notes.append(f"{node.name}: global average pool {h}x{w} = {h * w} elements (W11001: over "
                         f"{AVGPOOL_AICPU_WINDOW}, AI CPU) -> {how} (AI Core)")
    if replaced:
        view.replace_nodes(replaced, set())
    return counts


PASS = Pass(name="global-pool-cascade", profiles=frozenset({"any"}), apply=cascade_global_pools, record_zero=False,
            exact="every window divides the map, so the mean of the equal-sized block means is the mean (or "
                  "ReduceMean, the mean by definition); only pools over 256 elements, where the prediction wins",
            does="global average pools over 256 elements as AI Core pool cascades (atc W11001: AI CPU otherwise)")
