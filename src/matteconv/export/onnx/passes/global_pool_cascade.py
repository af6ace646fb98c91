"""`global-pool-cascade`: a global average pool too large for Ascend's AI Core pool, as a cascade of pools within it.

Why: atc runs an AvgPool whose window is over 256 elements (or whose stride is over 63) on the AI CPU, warning
W11001 (Ascend/ModelZoo-PyTorch ACL_PyTorch/contrib/cv/segmentation/FastSCNN/README.md; the rule is
`ascend.profile.cost.avgpool_on_aicpu`, the `avgpool-aicpu` warning of `matteconv profile`). MODNet's SE block
pools its 1/32-scale map globally: 16x16 = 256 elements at 512x512 (on the AI Core), 22x40 = 880 at 704x1280,
costed at 15.6 ms on the AI CPU against about 0.1 ms for the cascade below (profile's cost model).

The rewrite, for a GlobalAveragePool (or an AveragePool whose window is its whole unpadded map) on an N x C x H x
W input of static shape: AveragePool stages with kernel = stride = (a, b), a dividing H and b dividing W, each
within atc's AI Core limits (a*b <= 256, a, b <= 63, and CANN's pooling/depthwise buffer rule Fh*Fw*32 +
W*(31*stride_h + Fw) <= 32768, export/depthwise_plan.py: the Caffe lowering holds AVE pooling to it too), until
the map left is within 256 elements, then the original node pools that globally. 22x40: AveragePool 11x20 to
2x2, then GlobalAveragePool over 2x2. Among the cascades the one of fewest stages, then of the largest first
window (the smallest map written: the cheapest in the cost model, which these pools are memory-bound in) is
taken. When no cascade of
evenly dividing windows exists (a side with a large prime factor), the pool becomes one ReduceMean over axes 2
and 3 (keepdims), which CANN's ONNX operator list has (atlasoxol_09_0123) and the export already uses for every
InstanceNorm (centre-instance-norm).

Only where the prediction says it pays: a pool is rewritten when the rule fires on it and the cost model
predicts the rewrite faster than the AI CPU pool. A pool within the limits (every MODNet export up to 512x512,
and 384x384, the default) is left alone, and the pass adds nothing to the file then: its count is recorded in the
`passes` metadata only when it rewrote something (`Pass.record_zero=False`), so those files stay byte-identical
to what the export wrote before the pass existed. Each rewrite is one line in `rule_rewrites`, with both
predictions.

Exact: every window divides the map, so every block holds the same number of elements, and the mean of k
equal-sized block means is the mean of all the elements (sum / (k*m) = (sum of the k block sums / m) / k). In
floating point the cascade sums in two short runs instead of one long one, so its rounding error is bounded by
(a*b + H*W/(a*b)) ulps of the mean of |x| instead of H*W (tests/test_pool_cascade.py measures both against
float64). ReduceMean computes the same mean by definition.
"""
from __future__ import annotations

from functools import lru_cache

import onnx
from onnx import helper

from ...depthwise_plan import BUDGET, depthwise_need
from ..graph import attr, op_name
from .base import Pass, PassContext

MAX_STAGES = 4  # cascades longer than this are not searched (22x40 needs 1; a 1/32 map of 8192x8192 needs 2)
SOC = "Ascend310"  # the SoC the prediction is made for (the only one the cost model has)


def _limits():
    from ....ascend.profile.cost import AVGPOOL_AICPU_STRIDE, AVGPOOL_AICPU_WINDOW

    return AVGPOOL_AICPU_WINDOW, AVGPOOL_AICPU_STRIDE


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def stage_fits(a: int, b: int, width: int) -> bool:
    """An AveragePool a x b with stride a x b on a map `width` wide runs on the AI Core: window within 256
    elements, stride within 63 (W11001), and CANN's pooling buffer rule (depthwise_plan.depthwise_need)."""
    window, stride = _limits()
    return a * b <= window and max(a, b) <= stride and depthwise_need(a, b, a, width) <= BUDGET


def plan_cascade(h: int, w: int) -> list[tuple[int, int]] | None:
    """The windows (a, b) of the AveragePool stages that bring an H x W map within the AI Core's global-pool
    window (the last, global, stage is not listed); [] if H*W is within it already; None if no cascade of at most
    MAX_STAGES evenly dividing windows does. Fewest stages first; among those, the one whose first window is
    largest (the smallest map written), then the one whose second is, and so on."""
    window, _ = _limits()

    @lru_cache(maxsize=None)
    def best(hh: int, ww: int, depth: int):
        if hh * ww <= window:
            return ()
        if depth == 0:
            return None
        found = None
        for a in _divisors(hh):
            for b in _divisors(ww):
                if a * b == 1 or not stage_fits(a, b, ww):
                    continue
                rest = best(hh // a, ww // b, depth - 1)
                if rest is None:
                    continue
                cand = ((a, b), *rest)
                key = (len(cand), [-x * y for x, y in cand])
                if found is None or key < (len(found), [-x * y for x, y in found]):
                    found = cand
        return found

    plan = best(h, w, MAX_STAGES)
    return None if plan is None else list(plan)


def _pool_layer(name: str, shape: tuple[int, ...], kernel: tuple[int, int] | None):
    """The cost model's Layer for an average pool on `shape` (N, C, H, W): global when kernel is None."""
    from ....ascend.profile.graph import Layer

    n, c, h, w = shape
    if kernel is None:
        out, attrs = (n, c, 1, 1), {"mode": "avg", "global": True}
        kernel = stride = (h, w)
    else:
        out, attrs = (n, c, h // kernel[0], w // kernel[1]), {"mode": "avg", "global": False}
        stride = kernel
    return Layer(name, "GlobalAveragePool" if attrs["global"] else "AveragePool", "pool", [name + ":in"],
                 [name + ":out"], [shape], [out], kernel=kernel, stride=stride, attrs=attrs)


def predicted(shape: tuple[int, ...], plan: list[tuple[int, int]] | None) -> tuple[float, float, bool]:
    """(seconds the global pool costs as it is, seconds the rewrite costs, whether atc puts the pool on the AI
    CPU), predicted by the profile's cost model on the Ascend 310. plan None: the rewrite is the ReduceMean."""
    from ....ascend.profile.cost import avgpool_on_aicpu, layer_cost
    from ....ascend.profile.graph import Layer
    from ....ascend.profile.hardware import get_soc

    soc = get_soc(SOC)
    orig = _pool_layer("pool", shape, None)
    before = layer_cost(orig, soc).time
    if plan is None:
        n, c = shape[:2]
        mean = Layer("mean", "ReduceMean", "reduce", ["x"], ["m"], [shape], [(n, c, 1, 1)])
        return before, layer_cost(mean, soc).time, avgpool_on_aicpu(orig) is not None
    after, cur = 0.0, tuple(shape)
    for i, k in enumerate(plan):
        la = _pool_layer(f"stage{i}", cur, k)
        after += layer_cost(la, soc).time
        cur = la.out_shape
    return before, after + layer_cost(_pool_layer("last", cur, None), soc).time, avgpool_on_aicpu(orig) is not None


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
    window, _ = _limits()
    replaced: dict[int, list[onnx.NodeProto]] = {}
    counts = {"cascade": 0, "reduce-mean": 0}
    nodes = list(graph.node)  # held until replace_nodes, which finds them by id
    for node in nodes:
        if node.op_type not in ("GlobalAveragePool", "AveragePool"):
            continue
        shape = view.static_shape(node.input[0])
        if shape is None or len(shape) != 4 or not _is_global(node, shape):
            continue
        n, c, h, w = shape
        if h * w <= window:
            continue
        plan = plan_cascade(h, w)
        before, after, on_aicpu = predicted(shape, plan)
        if not on_aicpu or after >= before:
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
                new.append(helper.make_node("AveragePool", [x], [out], name=f"{scope}AveragePool_cascade{i}",
                                            kernel_shape=[a, b], strides=[a, b]))
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
        ctx.notes.append(f"{node.name}: global average pool {h}x{w} = {h * w} > {window} elements (W11001: AI CPU, "
                         f"predicted {before * 1e3:.3g} ms) -> {how} (AI Core, predicted {after * 1e3:.3g} ms)")
    if replaced:
        view.replace_nodes(replaced, set())
    return counts


PASS = Pass(name="global-pool-cascade", profiles=frozenset({"any"}), apply=cascade_global_pools, record_zero=False,
            exact="every window divides the map, so the mean of the equal-sized block means is the mean (or "
                  "ReduceMean, the mean by definition); only pools over 256 elements, where the prediction wins")
