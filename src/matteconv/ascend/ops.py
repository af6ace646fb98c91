"""A model as the layers (Caffe) or nodes (ONNX) the Ascend rules look at, with the shapes those rules need.

The operator limits in the CANN pages are written in terms of the input feature map (its width W, height H,
channels C), the filter size, the stride and the group. Caffe: the parameters come from the prototxt (parsed
in Python, never aborts) and the blob shapes from pycaffe in its worker process (Caffe aborts on errors; a net
it cannot load leaves the shapes unknown, and the rules that need them say they were not checked). ONNX:
attributes from the graph, shapes from `onnx.shape_inference`.
"""
from __future__ import annotations

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
    header = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
    return ModelOps(path, "caffe", ops, shapes_error if not shapes else None, header, nt.format)


# --- ONNX -------------------------------------------------------------------------------------------------------

def _dims(vi) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else 0 for d in t.shape.dim)
    return dims if all(d > 0 for d in dims) else None


def onnx_ops(path: str | Path) -> ModelOps:
    """Nodes of the main graph with inferred shapes (kernel size from the attribute or the weight's shape)."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # onnx raises DecodeError, InferenceError, OSError, ...
        raise MatteconvError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    g = model.graph
    if not g.node:  # protobuf reads an empty file as an empty model: a checker must not pass what it did not read
        what = "an empty file" if path.stat().st_size == 0 else "not an ONNX model, or an empty one"
        raise MatteconvError(f"{path}: no nodes in the graph ({what}): nothing to check")
    shapes = {vi.name: _dims(vi) for vi in [*g.input, *g.value_info, *g.output]}
    shapes.update({i.name: tuple(int(d) for d in i.dims) for i in g.initializer})
    constants = {i.name: onnx.numpy_helper.to_array(i).ravel() for i in g.initializer if len(i.dims) <= 1}
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
    return ModelOps(path, "onnx", ops)
