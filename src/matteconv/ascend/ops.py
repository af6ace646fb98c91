"""A model as the layers (Caffe) or nodes (ONNX) the Ascend rules look at, with the shapes those rules need.

The operator limits in the CANN pages are written in terms of the input feature map (its width W, height H,
channels C), the filter size, the stride and the group. Caffe: the parameters come from the prototxt (parsed
in Python, never aborts) and the blob shapes from pycaffe in its worker process (Caffe aborts on errors; a net
it cannot load leaves the shapes unknown, and the rules that need them say they were not checked). ONNX:
attributes from the graph, shapes from `onnx.shape_inference`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MatteconvError

CONV_TYPES = {"Convolution": "conv", "Conv": "conv", "Deconvolution": "deconv", "ConvTranspose": "deconv"}


@dataclass
class Op:
    """One layer or node. `kind` is conv | deconv | resize | slice (ONNX) | other; shapes are NCHW of the first input/output."""

    name: str
    type: str
    kind: str = "other"
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None
    kernel: tuple[int, int] | None = None  # (h, w)
    stride: tuple[int, int] = (1, 1)  # (h, w)
    group: int = 1
    attrs: dict = field(default_factory=dict)  # resize: mode, coordinate_transformation_mode

    @property
    def depthwise(self) -> bool:
        """group == input channels (> 1): CANN's "group == Channel" case. Without a known input shape, Caffe's
        own depthwise convention (group == num_output) decides."""
        if self.group <= 1:
            return False
        if self.in_shape is not None and len(self.in_shape) == 4:
            return self.group == self.in_shape[1]
        return self.group == self.attrs.get("num_output")


@dataclass
class ModelOps:
    path: Path
    framework: str  # caffe | onnx
    ops: list[Op]
    shapes_error: str | None = None  # why shapes are unknown (Caffe could not load the net)
    header: list[str] = field(default_factory=list)  # leading '#' lines of a prototxt (matteconv provenance)
    format: str = "V2"  # Caffe prototxt format the file was written in (V0/V1 are read upgraded, as Caffe does)


# --- Caffe ------------------------------------------------------------------------------------------------------

def caffe_shapes(prototxt: Path) -> tuple[dict[str, tuple[int, ...]], str | None]:
    """Blob name -> shape from pycaffe (prototxt only, no weights needed), or ({}, why not)."""
    from ..export.caffe.runner import CaffeWorker

    try:
        worker = CaffeWorker(prototxt, None)
    except MatteconvError as e:
        return {}, str(e)
    try:
        return {k: tuple(int(d) for d in v) for k, v in worker.info["shapes"].items()}, None
    finally:
        worker.close()


def caffe_ops(prototxt: str | Path, shapes: dict[str, tuple[int, ...]] | None = None,
              shapes_error: str | None = None) -> ModelOps:
    """Layers of a prototxt; shapes from `shapes` if given (e.g. what `inspect` already loaded), else pycaffe."""
    from ..export.caffe.upgrade import read_net
    from ..export.caffe.writer import spatial_pair

    path = Path(prototxt)
    nt = read_net(path)
    net = nt.net
    if shapes is None and shapes_error is None:
        shapes, shapes_error = caffe_shapes(path)
    shapes = shapes or {}
    ops = []
    for layer in nt.test_layers:  # the net pycaffe (and a converter) builds: TEST phase
        op = Op(layer.name, layer.type, CONV_TYPES.get(layer.type, "other"), list(layer.bottom), list(layer.top))
        if layer.bottom and layer.bottom[0] in shapes:
            op.in_shape = tuple(shapes[layer.bottom[0]])
        if layer.top and layer.top[0] in shapes:
            op.out_shape = tuple(shapes[layer.top[0]])
        if op.kind in ("conv", "deconv"):
            p = layer.convolution_param
            op.kernel = spatial_pair(p, "kernel_size", "kernel", 0)
            op.stride = spatial_pair(p, "stride", "stride", 1)
            op.group = int(p.group)
            op.attrs["num_output"] = int(p.num_output)
        ops.append(op)
    upsample = _upsample_params(path.read_bytes().decode("latin-1"))
    for op in ops:
        if op.type == "Upsample" and op.name in upsample:
            op.attrs.update(upsample[op.name])
    header = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
    return ModelOps(path, "caffe", ops, shapes_error if not shapes else None, header, nt.format)


_LAYER = re.compile(r"\blayers?\s*\{")
_UPSAMPLE_PARAM = re.compile(r"\bupsample_param\s*\{([^{}]*)\}")
_FIELD = re.compile(r"\b(scale|stride|stride_h|stride_w)\s*:\s*([-+0-9.eE]+)")


def _upsample_params(text: str) -> dict[str, dict]:
    """Layer name -> the `upsample_param` fields atc reads (scale, stride, stride_h, stride_w), from the text: the
    stride fields are Ascend's (its caffe.proto), which BVLC's and our fork's caffe.proto lack, so they are
    read here rather than from the parsed message."""
    text = re.sub(r"#[^\n]*", "", text)
    out: dict[str, dict] = {}
    for m in _LAYER.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        block = text[m.end():i - 1]
        param = _UPSAMPLE_PARAM.search(block)
        name = re.search(r"\bname\s*:\s*[\"']([^\"']*)[\"']", block)
        if param and name:
            out[name.group(1)] = {k: float(v) for k, v in _FIELD.findall(param.group(1))}
    return out


# --- ONNX -------------------------------------------------------------------------------------------------------

def _dims(vi) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else 0 for d in t.shape.dim)
    return dims if all(d > 0 for d in dims) else None


def onnx_ops(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> ModelOps:
    """Nodes of the main graph with inferred shapes (kernel size from the attribute or the weight's shape).

    `input_shapes` (atc's --input_shape, name -> NCHW) fixes the graph inputs before shape inference, so a
    dynamic model (the official MODNet export: [batch_size, 3, height, width]) gets every shape rule; the names
    must be graph inputs. Shapes are inferred on a copy whose Constant nodes are initializers, with ONNX's data
    propagation (Shape -> Gather -> Concat -> Reshape/Expand chains), so sizes computed in the graph are known;
    the nodes checked are the file's own.
    """
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ...
        raise MatteconvError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    if input_shapes:
        by_name = {vi.name: vi for vi in graph_inputs}
        unknown = [n for n in input_shapes if n not in by_name]
        if unknown:
            raise MatteconvError(f"{path}: --input-shape names {', '.join(unknown)}, not an input of the model "
                                 f"(inputs: {', '.join(by_name) or 'none'})")
        for name, shape in input_shapes.items():
            dims = by_name[name].type.tensor_type.shape.dim
            if len(dims) != len(shape):
                raise MatteconvError(f"{path}: --input-shape {name}:{','.join(map(str, shape))} has {len(shape)} "
                                     f"dimensions; input {name!r} has {len(dims)}")
            for d, v in zip(dims, shape):
                d.Clear()
                d.dim_value = int(v)
    dynamic = [vi.name for vi in graph_inputs if _dims(vi) is None]
    try:
        model = _infer(model)
    except Exception as e:  # onnx raises InferenceError, ValidationError, ...
        raise MatteconvError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    g = model.graph
    if not g.node:  # protobuf reads an empty file as an empty model: a checker must not pass what it did not read
        what = "an empty file" if path.stat().st_size == 0 else "not an ONNX model, or an empty one"
        raise MatteconvError(f"{path}: no nodes in the graph ({what}): nothing to check")
    shapes = {vi.name: _dims(vi) for vi in [*g.input, *g.value_info, *g.output]}
    shapes.update({i.name: tuple(int(d) for d in i.dims) for i in g.initializer})
    constants = {i.name: onnx.numpy_helper.to_array(i).ravel() for i in g.initializer if len(i.dims) <= 1}
    for node in g.node:  # torch's older exports write Slice's starts/axes/steps as Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            t = node.attribute[0].t
            if len(t.dims) <= 1:
                constants[node.output[0]] = onnx.numpy_helper.to_array(t).ravel()
    ops = []
    for node in g.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kind = CONV_TYPES.get(node.op_type, "resize" if node.op_type in ("Resize", "Upsample") else
                              "slice" if node.op_type == "Slice" else "other")
        op = Op(node.name or f"{node.op_type}_{len(ops)}", node.op_type, kind, list(node.input), list(node.output),
                shapes.get(node.input[0]) if node.input else None,
                shapes.get(node.output[0]) if node.output else None)
        if kind in ("conv", "deconv"):
            weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
            ks = attrs.get("kernel_shape") or (weight[2:] if weight and len(weight) == 4 else None)
            op.kernel = (int(ks[0]), int(ks[1])) if ks and len(ks) == 2 else None
            st = attrs.get("strides") or [1, 1]
            op.stride = (int(st[0]), int(st[1])) if len(st) == 2 else (1, 1)
            op.group = int(attrs.get("group", 1))
        elif kind == "resize":
            op.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        elif node.op_type == "Slice" and len(node.input) > 4:  # opset >= 10: axes and steps are inputs
            axes, steps = (constants.get(node.input[i]) for i in (3, 4))
            if steps is not None:
                op.attrs = {"steps": [int(v) for v in steps],
                            "axes": [int(v) for v in axes] if axes is not None else list(range(len(steps)))}
        ops.append(op)
    why = None
    if dynamic:
        why = (f"input(s) {', '.join(dynamic)} of dynamic size: pass --input-shape "
               f"{dynamic[0]}:1,3,H,W (atc's spelling; several inputs separated by ';')")
    return ModelOps(path, "onnx", ops, shapes_error=why)


def _infer(model):
    """The model with shape inference run on a copy whose Constant nodes are initializers (data propagation
    reads initializers); the original nodes are kept, with the value_info the copy got."""
    import onnx

    work = onnx.ModelProto()
    work.CopyFrom(model)
    g = work.graph
    nodes = []
    for node in g.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    try:
        inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
        for _ in range(8):  # sizes computed from Shape nodes: fold them to constants, infer again
            if not _fold_shape_arithmetic(inferred):
                break
            inferred = onnx.shape_inference.infer_shapes(inferred, data_prop=True)
    except Exception:  # data propagation is newer and stricter: plain inference on the file as it is
        return onnx.shape_inference.infer_shapes(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    out.graph.value_info.extend(inferred.graph.value_info)
    return out



_SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Mul", "Add", "Sub", "Div",
              "Floor", "Ceil", "Identity", "Reshape", "ReduceProd", "Max", "Min"}


def _fold_shape_arithmetic(model) -> bool:
    """Evaluate, in numpy, the small integer tensors a graph computes from Shape nodes (torch's exports write
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape/Expand for `x.view(b, c, 1, 1)` and `expand_as`), once the
    shapes they read are known, and add them as initializers so that shape inference can use them. ONNX's own
    data propagation stops at some of these (Expand, and Concat of Unsqueezed Gathers at opset 11). Returns True
    when a value was added. Only tensors of at most 8 integers are folded."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    shapes = {vi.name: _dims(vi) for vi in [*g.input, *g.value_info, *g.output]}
    values = {i.name: numpy_helper.to_array(i) for i in g.initializer if int(np.prod(i.dims or [1])) <= 8}
    added = False
    for n in g.node:
        if n.op_type not in _SHAPE_OPS or not n.output or n.output[0] in values:
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        try:
            if n.op_type == "Shape":
                shape = shapes.get(n.input[0])
                if shape is None or a:
                    continue
                out = np.array(shape, dtype=np.int64)
            else:
                if not all(i in values for i in n.input if i):
                    continue
                ins = [values[i] if i else None for i in n.input]
                out = _shape_op(n.op_type, ins, a)
        except Exception:  # noqa: BLE001 - anything unusual stays unknown
            continue
        if out is None or out.size > 8 or out.dtype.kind not in "iu":
            continue
        values[n.output[0]] = out
        g.initializer.append(numpy_helper.from_array(out, n.output[0]))
        added = True
    if added:  # the folded nodes' outputs are initializers now: drop the nodes so the graph stays valid
        folded = {t.name for t in g.initializer}
        keep = [n for n in g.node if not (n.output and all(o in folded for o in n.output))]
        del g.node[:]
        g.node.extend(keep)
    return added


def _shape_op(op: str, ins: list, a: dict):
    import numpy as np

    x = ins[0]
    if op == "Gather":
        return np.take(x, ins[1], axis=a.get("axis", 0))
    if op == "Unsqueeze":
        axes = a.get("axes", ins[1] if len(ins) > 1 and ins[1] is not None else None)
        for ax in sorted(int(v) for v in np.ravel(axes)):
            x = np.expand_dims(x, ax)
        return x
    if op == "Squeeze":
        axes = a.get("axes", ins[1] if len(ins) > 1 and ins[1] is not None else None)
        return np.squeeze(x, tuple(int(v) for v in np.ravel(axes))) if axes is not None else np.squeeze(x)
    if op == "Concat":
        return np.concatenate([np.atleast_1d(v) for v in ins], axis=a.get("axis", 0))
    if op == "Cast":  # only to INT32 / INT64 (TensorProto 6, 7): float results are not shape arithmetic
        return x.astype(np.int32 if a.get("to") == 6 else np.int64) if a.get("to") in (6, 7) else None
    if op == "Slice":
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        idx = [slice(None)] * x.ndim
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            idx[int(ax)] = slice(int(st), int(en), int(sp))
        return x[tuple(idx)]
    if op in ("Mul", "Add", "Sub", "Max", "Min"):
        f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Max": np.maximum, "Min": np.minimum}[op]
        return f(x, ins[1])
    if op == "Div":
        return np.floor_divide(x, ins[1]) if x.dtype.kind in "iu" else None
    if op in ("Floor", "Ceil", "Identity"):
        return x
    if op == "Reshape":
        return np.reshape(x, [int(v) for v in ins[1]])
    if op == "ReduceProd":
        return np.prod(x, keepdims=bool(a.get("keepdims", 1)))
    return None
