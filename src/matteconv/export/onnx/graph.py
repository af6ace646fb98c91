"""The ONNX graph helpers every pass shares, and `GraphView`: one cached view of a model's static shapes.

Helpers (pure functions of a graph): `producers`, `node_readers`, `graph_constants`, `channel_slice`, `attr`,
`builders`, `replace_nodes`, `static_shapes`, `channels`.

`GraphView` is what export/onnx/passes hand each pass (`PassContext.view`). Shape inference on MODNet serialises the
whole model (26 MB of weights) and used to run once per pass that needed shapes (six times per `--runtime
onnxruntime` export). The view infers once and answers later lookups from that result, inferring again only when
asked about a tensor that did not exist at the last inference and the graph changed since (`changed()`, which
`replace_nodes` and the pass runner call). That is exact because every pass is exact: a tensor a pass keeps keeps
its shape (the rewrite computes the same function under the same name), so an earlier inference of it stays true;
the contract test (tests/test_passes.py) checks that each pass leaves every kept tensor's inferred shape as it was.
Constants are decoded on demand (`constants()`), not all 26 MB per pass.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that writes it."""
    return {o: n for n in graph.node for o in n.output}


def node_readers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it, in graph order (a node reading it twice is listed twice)."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in n.input:
            out.setdefault(name, []).append(n)
    return out


def graph_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Tensor name -> value of every initializer and every Constant node (`value` attribute)."""
    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


class LazyConstants(Mapping):
    """`graph_constants(graph)` as it is when made, each value decoded on first use (then kept)."""

    def __init__(self, graph: onnx.GraphProto):
        self._protos = {i.name: i for i in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self._protos[n.output[0]] = n.attribute[0].t
        self._values: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = numpy_helper.to_array(self._protos[name])
        return self._values[name]

    def __contains__(self, name) -> bool:
        return name in self._protos

    def __iter__(self) -> Iterator[str]:
        return iter(self._protos)

    def __len__(self) -> int:
        return len(self._protos)


def channel_slice(node: onnx.NodeProto, consts: Mapping, channels: int | None) -> tuple[int, int] | None:
    """(a, e) if `node` is a Slice of channels a:e (axis 1, step 1, constant bounds) of a C-channel tensor, with
    ONNX Slice's rules: a negative bound counts from the end, then both are clamped to [0, C]; else None."""
    args = [consts.get(x) if x else None for x in list(node.input[1:]) + [""] * 4][:4]
    starts, ends, axes, steps = args
    if channels is None or starts is None or ends is None or axes is None or starts.size != 1 or ends.size != 1:
        return None
    if int(axes.reshape(-1)[0]) not in (1, -3) or (steps is not None and int(steps.reshape(-1)[0]) != 1):
        return None
    a, e = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    a, e = (a + channels if a < 0 else a), (e + channels if e < 0 else e)
    a, e = min(max(a, 0), channels), min(max(e, 0), channels)
    return (a, e) if a < e else None


def attr(node: onnx.NodeProto, name: str, default):
    """The value of attribute `name` of `node`, or `default` if it has none."""
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def op_name(name: str, op: str) -> str:
    """The name of a node of type `op` derived from `name` (the replaced node's, plus a role): `name` itself when
    its last path segment already contains `op`, else `<name>_<op>`. So a node's name keeps the module scope
    `compare` matches by (the path up to the last `/`), and says what it is: atc's `--keep_dtype` and
    `--op_precision_mode` address layers by name, and users read them in atc's logs and in `compare` (issue 34)."""
    return name if op in name.rpartition("/")[2] else f"{name}_{op}"


def name_problems(graph: onnx.GraphProto) -> list[str]:
    """What breaks the naming rule (`op_name`) in `graph`: a node without a name or outside a module scope (a
    name not starting with `/`, as torch writes them), a name used twice, a name without its op type."""
    seen: set[str] = set()
    problems = []
    for n in graph.node:
        if not n.name.startswith("/"):
            problems.append(f"{n.op_type} node {n.name!r} (writing {n.output[0]!r}) has no module scope")
        elif n.name in seen:
            problems.append(f"{n.op_type} node name {n.name!r} is used twice")
        elif n.op_type not in n.name.rpartition("/")[2]:
            problems.append(f"{n.op_type} node {n.name!r} does not say it is a {n.op_type}")
        seen.add(n.name)
    return problems


def builders(graph: onnx.GraphProto, name: str, nodes: list[onnx.NodeProto]):
    """const(suffix, value) -> initializer name; node(op, inputs, suffix, **attrs) -> output name; both named
    `<name>_<suffix>` (`name`: the replaced node's), the node itself `op_name(<name>_<suffix>, op)`, nodes
    appended to `nodes`."""
    def const(suffix: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, f"{name}_{suffix}"))
        return f"{name}_{suffix}"

    def node(op: str, inputs: list[str], suffix: str, **attrs) -> str:
        out = f"{name}_{suffix}"
        nodes.append(helper.make_node(op, inputs, [out], name=op_name(out, op), **attrs))
        return out
    return const, node


def replace_nodes(graph: onnx.GraphProto, replaced: dict[int, list[onnx.NodeProto]], dropped: set[int]) -> None:
    """Put each node id in `replaced` by its new nodes (in place, in order), drop the ids in `dropped`, then the
    initializers and value_info nothing uses any more."""
    order = []
    for n in graph.node:
        if id(n) not in dropped:
            order.extend(replaced.get(id(n), [n]))
    del graph.node[:]
    graph.node.extend(order)
    _keep_only(graph.initializer, {name for n in graph.node for name in n.input})
    _keep_only(graph.value_info, {o for n in graph.node for o in n.output})


def _keep_only(field, names: set[str]) -> None:
    """Drop the entries of a repeated graph field (initializers, value_info) whose name is not in `names`."""
    kept = [item for item in field if item.name in names]
    del field[:]
    field.extend(kept)


Dims = tuple  # one entry per axis: an int where shape inference found a static size, else None


def inferred_dims(model: onnx.ModelProto) -> dict[str, Dims]:
    """Tensor name -> dims, for every tensor ONNX shape inference gives a tensor shape (inputs, value_info,
    outputs, later entries winning)."""
    g = onnx.shape_inference.infer_shapes(model).graph
    out = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            out[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else None
                                 for d in vi.type.tensor_type.shape.dim)
    return out


def _static(dims: Dims | None) -> tuple[int, ...] | None:
    return dims if dims is not None and all(d is not None for d in dims) else None


def _channels_of(dims: Dims | None) -> int | None:
    return dims[1] if dims is not None and len(dims) == 4 and dims[1] is not None else None


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, for every tensor whose shape shape inference finds fully static."""
    return {k: s for k, d in inferred_dims(model).items() if (s := _static(d)) is not None}


def channels(model: onnx.ModelProto) -> dict[str, int]:
    """Static channel count (axis 1) of every 4-D tensor shape inference can see."""
    return {k: c for k, d in inferred_dims(model).items() if (c := _channels_of(d)) is not None}


class GraphView:
    """A model and what passes ask of it: static shapes (inferred once, see the module docstring), constants
    (decoded on demand), producers and readers (kept until `changed()`: a pass that edits the graph calls
    `replace_nodes`, or `changed()` itself, before it asks again; the pass runner calls it after every pass).
    `inferences` counts the shape inferences run (tests hold the export to its budget)."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.inferences = 0
        self._dims: dict[str, Dims] = {}
        self._known: set[str] = set()  # tensors that existed at the last inference
        self._generation = 0  # bumped by changed()
        self._inferred_at = -1
        self._tensors_at = -1
        self._tensors: set[str] = set()
        self._maps: dict[str, tuple[int, object]] = {}

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    def changed(self) -> None:
        """Tell the view the graph changed: a tensor it has not seen is inferred afresh when asked for."""
        self._generation += 1

    def _current_tensors(self) -> set[str]:
        if self._tensors_at != self._generation:
            self._tensors = {o for n in self.graph.node for o in n.output} | {i.name for i in self.graph.input}
            self._tensors_at = self._generation
        return self._tensors

    def dims(self, name: str) -> Dims | None:
        """Inferred dims of tensor `name` (None where unknown)."""
        stale = self._inferred_at != self._generation
        if self._inferred_at < 0 or (stale and name not in self._known and name in self._current_tensors()):
            self._dims = inferred_dims(self.model)
            self._known = set(self._current_tensors())
            self._inferred_at = self._generation
            self.inferences += 1
        return self._dims.get(name)

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of `name` if fully static, else None."""
        return _static(self.dims(name))

    def channels(self, name: str) -> int | None:
        """Axis 1 of a 4-D tensor with a static channel count, else None."""
        return _channels_of(self.dims(name))

    def constants(self) -> LazyConstants:
        """`graph_constants` of the graph as it is now, decoded on demand."""
        return LazyConstants(self.graph)

    def _cached(self, key: str, build):
        """`build(graph)`, kept until the next `changed()`."""
        at, value = self._maps.get(key, (-1, None))
        if at != self._generation:
            value = build(self.graph)
            self._maps[key] = (self._generation, value)
        return value

    def producers(self) -> dict[str, onnx.NodeProto]:
        """`producers(graph)`, kept until the next `changed()`."""
        return self._cached("producers", producers)

    def readers(self) -> dict[str, list[onnx.NodeProto]]:
        """`node_readers(graph)`, kept until the next `changed()`."""
        return self._cached("readers", node_readers)

    def replace_nodes(self, replaced: dict[int, list[onnx.NodeProto]], dropped: set[int]) -> None:
        """`replace_nodes` on the view's graph, then `changed()`."""
        replace_nodes(self.graph, replaced, dropped)
        self.changed()


class ShapeLookup(Mapping):
    """A view's shapes as a read-only mapping (`.get(name)`), for passes written against a dict: `kind` is
    "static" (fully static shapes) or "channels" (axis 1 of 4-D tensors)."""

    def __init__(self, view: GraphView, kind: str):
        self._view, self._get = view, view.static_shape if kind == "static" else view.channels

    def __getitem__(self, name: str):
        value = self._get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:
        return self._get(name) is not None

    def __iter__(self) -> Iterator[str]:  # the tensors of the last inference
        return iter(k for k in list(self._view._dims) if self._get(k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def view_of(model: onnx.ModelProto, view: GraphView | None) -> GraphView:
    """`view` if it is of `model`, else a fresh one (passes called directly, outside the pass runner)."""
    return view if view is not None and view.model is model else GraphView(model)
