"""ONNX -> MODNet checkpoint (`matteconv import`): any MODNet export back into the official layout.

Matched by structure, never by initializer names (the official export names its folded backbone weights by
number):
- Convolutions. The graph's Conv nodes in graph order map one to one onto MODNet's convolutions in the order
  its forward runs them (69 for MODNet; the semantic and detail heads never run at inference and are in no
  export). Each pair must agree in weight shape, group, strides, pads and dilations; the first Conv that does
  not fit (or the first node after the graph runs out of Convs) is named in the refusal. Our own export's
  `Conv(Concat)` split (export/concat_conv.py: one Conv per concatenated part, summed by Adds, the bias on part
  0) is joined back first: a chain of Adds whose every operand is a Conv read by nothing else.
- Backbone BatchNorms. torch.onnx folds a BatchNorm into the bias-free convolution before it, so the Conv
  carries weight and bias: the weight goes into the convolution and the BatchNorm after it becomes an identity
  that carries the bias (weight 1, running_mean 0, running_var 1 - eps: (x - 0) / sqrt(1 - eps + eps) * 1 + b).
  An unfolded export (a BatchNormalization reading the Conv) is copied as it is, the Conv's bias moved into
  its running_mean.
- IBNorm. The BatchNormalization reached from a branch Conv through Slice/Split nodes is that IBNorm's bnorm;
  an export with the BatchNorm half folded into the Conv (`--fold-batchnorm`) gets the identity.
- SE block. Its two Linear layers are exported as MatMul (weight transposed: ONNX MatMul multiplies by the
  in x out matrix, nn.Linear holds out x in) or as Gemm (transB says which): the first two with a constant
  weight, in graph order.

Architecture from the weights: in_channels from the first Conv (3 or 4), hr_channels from the Conv that maps
onto `hr_branch.tohr_enc2x`, split inputs from the graph's two inputs (`image`, `prev_alpha`).
Errors (MatteconvError, one line naming the file): not found, not ONNX / truncated / damaged, external data
missing, not MODNet (the first node that does not fit), parity failure (export/parity.py's rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import MatteconvError
from .modnet import IBNorm, MODNet

# What inference never runs: absent from every export, written as zeros (BatchNorm running_var 1, its initial
# value), named in the command's output and in the file's metadata so `train --init` knows they are untrained.
UNTRAINED_HEADS = ("lr_branch.conv_lr.", "hr_branch.conv_hr.")
# The official export's first graph: opset 11, producer pytorch 1.7 (DESIGN.md section 10); ours write 11..17.
OPSETS = range(7, 22)
DEFAULT_PARITY_SIZE = (512, 512)  # a dynamic graph is checked at the official model's size
SE_OPS = ("MatMul", "Gemm")
PASS_THROUGH = ("Slice", "Split", "Identity")  # between an IBNorm's Conv and its BatchNormalization


@dataclass
class OnnxConv:
    """One convolution of the graph, after joining split parts: float32 weight O x I/g x kh x kw, bias O or None."""

    name: str  # the node's name (or its output, when unnamed); for joined parts, part 0's
    output: str  # the tensor the (joined) convolution yields
    weight: np.ndarray
    bias: np.ndarray | None
    group: int
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    parts: int = 1


@dataclass
class ImportResult:
    """What `import_onnx` built: the model (eval) and how it was matched and checked."""

    model: MODNet
    in_channels: int
    hr_channels: int
    split_inputs: bool
    opset: int
    producer: str
    convs: int
    joined_parts: int  # Conv(Concat) parts joined back (our own export)
    untrained: list[str]  # state_dict keys written as zeros
    parity_size: tuple[int, int]
    max_abs: float = 0.0  # PyTorch fp32 vs onnxruntime on the photo
    mean_abs: float = 0.0
    tolerance: float = 0.0
    vs_float64: float | None = None
    notes: list[str] = field(default_factory=list)


def read_onnx(path: str | Path):
    """Load an ONNX file with its external data; every failure is one line naming the file."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise MatteconvError(f"{path}: not found")
    if path.is_dir():
        raise MatteconvError(f"{path}: is a folder, expected an .onnx file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, RuntimeWarning-as-error, OSError ...
        raise MatteconvError(f"{path}: not a readable ONNX model (truncated or damaged: "
                             f"{type(e).__name__}: {' '.join(str(e).split())[:120] or 'no details'})") from None
    if not model.graph.node:
        raise MatteconvError(f"{path}: not a readable ONNX model (no graph nodes: truncated, damaged or not ONNX)")
    from onnx.external_data_helper import uses_external_data

    external = [t for t in model.graph.initializer if uses_external_data(t)]
    if external:
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except Exception as e:
            first = next((d.value for d in external[0].external_data if d.key == "location"), "?")
            raise MatteconvError(f"{path}: its external data cannot be read (tensor {external[0].name}, file "
                                 f"{first}: {type(e).__name__}); keep the data file beside the model") from None
    return model


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            a = _attrs(n)
            if "value" in a:
                out[n.output[0]] = numpy_helper.to_array(a["value"])
    return out


def _node_name(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _conv_of(node, consts, path) -> OnnxConv:
    if len(node.input) < 2 or node.input[1] not in consts:
        raise MatteconvError(f"{path}: not a MODNet export: Conv node {_node_name(node)!r} has no constant weight")
    w = np.array(consts[node.input[1]], np.float32)
    if w.ndim != 4:
        raise MatteconvError(f"{path}: not a MODNet export: Conv node {_node_name(node)!r} is not 2-D "
                             f"(weight shape {w.shape})")
    b = None
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in consts:
            raise MatteconvError(f"{path}: not a MODNet export: Conv node {_node_name(node)!r} has no constant bias")
        b = np.array(consts[node.input[2]], np.float32)
    a = _attrs(node)
    pads = tuple(a.get("pads", [0, 0, 0, 0]))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise MatteconvError(f"{path}: not a MODNet export: Conv node {_node_name(node)!r} uses auto_pad")
    return OnnxConv(_node_name(node), node.output[0], w, b, int(a.get("group", 1)), tuple(a.get("strides", [1, 1])),
                    (pads[0], pads[1], pads[2], pads[3]), tuple(a.get("dilations", [1, 1])))


def graph_convs(model, path) -> tuple[list[OnnxConv], int]:
    """The graph's convolutions in graph order, split parts joined back (module docstring); and how many parts
    were joined."""
    graph = model.graph
    consts = _constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for n in graph.node:
        for x in n.input:
            readers[x] = readers.get(x, 0) + 1
    outputs = {o.name for o in graph.output}

    def parts_of(tensor: str) -> list | None:
        """The Conv nodes whose sum `tensor` is (in concat order), or None if it is not such a sum."""
        node = producer.get(tensor)
        if node is None or readers.get(tensor, 0) != 1 or tensor in outputs:
            return None
        if node.op_type == "Conv":
            return [node]
        if node.op_type == "Add" and len(node.input) == 2:
            a, b = parts_of(node.input[0]), parts_of(node.input[1])
            return a + b if a and b else None
        return None

    joined: dict[int, list] = {}  # id(first part) -> [parts, last Add], for every Add chain that is one split Conv
    inside: set[str] = set()  # sums inside a chain already joined
    for n in reversed(graph.node):  # the outermost Add of a chain comes last in graph order
        if n.op_type != "Add" or len(n.input) != 2 or n.output[0] in inside:
            continue
        a, b = parts_of(n.input[0]), parts_of(n.input[1])
        if not (a and b):
            continue
        parts = a + b
        convs = [_conv_of(p, consts, path) for p in parts]
        key = lambda c: (c.weight.shape[0], c.weight.shape[2:], c.group, c.strides, c.pads, c.dilations)  # noqa: E731
        if any(key(c) != key(convs[0]) for c in convs) or convs[0].group != 1 or sum(
                c.bias is not None for c in convs) > 1:
            continue
        joined[id(parts[0])] = [parts, n]
        inside |= _chain_tensors(n, producer)
    skip = {id(p) for parts, _ in joined.values() for p in parts[1:]}
    out, n_joined = [], 0
    for node in graph.node:
        if node.op_type != "Conv" or id(node) in skip:
            continue
        if id(node) in joined:
            parts, add = joined[id(node)]
            convs = [_conv_of(p, consts, path) for p in parts]
            bias = next((c.bias for c in convs if c.bias is not None), None)
            first = convs[0]
            out.append(OnnxConv(first.name, add.output[0], np.concatenate([c.weight for c in convs], axis=1), bias,
                                first.group, first.strides, first.pads, first.dilations, len(parts)))
            n_joined += len(parts)
        else:
            out.append(_conv_of(node, consts, path))
    return out, n_joined


def _chain_tensors(add, producer) -> set[str]:
    """Every intermediate sum tensor of an Add chain ending in `add`."""
    seen, stack = set(), list(add.input)
    while stack:
        t = stack.pop()
        n = producer.get(t)
        if n is not None and n.op_type == "Add":
            seen.add(t)
            stack.extend(n.input)
    return seen


def _batchnorm_after(conv: OnnxConv, graph, consts) -> dict[str, np.ndarray] | None:
    """The BatchNormalization fed by this Conv directly or through Slice/Split nodes (an IBNorm's first half)."""
    readers: dict[str, list] = {}
    for n in graph.node:
        for x in n.input:
            readers.setdefault(x, []).append(n)
    frontier, seen = [conv.output], set()
    while frontier:
        t = frontier.pop(0)
        for n in readers.get(t, []):
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.op_type == "BatchNormalization" and n.input[0] == t and all(x in consts for x in n.input[1:5]):
                names = ("weight", "bias", "running_mean", "running_var")
                return {k: np.array(consts[x], np.float32) for k, x in zip(names, n.input[1:5])} | {
                    "eps": float(_attrs(n).get("epsilon", 1e-5)), "node": _node_name(n)}
            if n.op_type in PASS_THROUGH:
                frontier.extend(n.output)
    return None


def _se_weights(graph, consts, path) -> list[np.ndarray]:
    """The SE block's two Linear weights (out x in), from the first two MatMul/Gemm nodes with a constant weight."""
    found = []
    for n in graph.node:
        if n.op_type not in SE_OPS or len(n.input) < 2 or n.input[1] not in consts:
            continue
        w = np.array(consts[n.input[1]], np.float32)
        if w.ndim != 2:
            continue
        if n.op_type == "MatMul" or not _attrs(n).get("transB", 0):
            w = w.T
        found.append((n, np.ascontiguousarray(w)))
        if len(found) == 2:
            break
    if len(found) < 2:
        raise MatteconvError(f"{path}: not a MODNet export: {len(found)} MatMul/Gemm node(s) with a constant weight; "
                             "MODNet's SE block has two")
    return found


def execution_convs(model: MODNet, size: tuple[int, int] = (64, 64)) -> list[tuple[str, nn.Conv2d]]:
    """MODNet's convolutions (qualified names) in the order its eval forward runs them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _x: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    names = {id(m): k for k, m in model.named_modules()}
    try:
        model.eval()
        with torch.no_grad():
            x = torch.zeros(1, model.in_channels, *size)
            model(x[:, :3], x[:, 3:]) if model.split_inputs else model(x)
    finally:
        for h in hooks:
            h.remove()
    return [(names[id(m)], m) for m in order]


def _fits(conv: OnnxConv, mod: nn.Conv2d) -> str:
    """'' when the ONNX conv is the module's, else what differs."""
    want = (tuple(mod.weight.shape), mod.groups, tuple(mod.stride), tuple(mod.padding) * 2, tuple(mod.dilation))
    got = (tuple(conv.weight.shape), conv.group, tuple(conv.strides), tuple(conv.pads), tuple(conv.dilations))
    labels = ("weight shape", "group", "strides", "pads", "dilations")
    for label, w, g in zip(labels, want, got):
        if w != g:
            return f"{label} {g}, expected {w}"
    return ""


def _identity_bn(bn: nn.BatchNorm2d, bias: np.ndarray | None) -> None:
    """bn(x) = x + bias: weight 1, running_mean 0, running_var 1 - eps."""
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.from_numpy(bias) if bias is not None else torch.zeros_like(bn.bias))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


def _set_bn(bn: nn.BatchNorm2d, p: dict, conv_bias: np.ndarray | None, path, node) -> None:
    if p["weight"].shape != tuple(bn.weight.shape):
        raise MatteconvError(f"{path}: not a MODNet export: BatchNormalization {p['node']!r} after Conv {node!r} "
                             f"has {p['weight'].shape[0]} channels, expected {bn.weight.shape[0]}")
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(p["weight"]))
        bn.bias.copy_(torch.from_numpy(p["bias"]))
        mean = p["running_mean"] if conv_bias is None else p["running_mean"] - conv_bias[: len(p["running_mean"])]
        bn.running_mean.copy_(torch.from_numpy(np.asarray(mean, np.float32)))
        bn.running_var.copy_(torch.from_numpy(p["running_var"]))
        bn.eps = p["eps"]


def _inputs(model, path) -> tuple[list[str], list[list]]:
    inits = {i.name for i in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    dims = [[d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim] for i in ins]
    return [i.name for i in ins], dims


def build_from_onnx(model_proto, path) -> tuple[MODNet, dict]:
    """A MODNet (eval, float32) holding the graph's weights, matched by structure (module docstring); and facts
    about the match. Raises MatteconvError naming the first node that does not fit."""
    path = Path(path)
    graph = model_proto.graph
    consts = _constants(graph)
    names, dims = _inputs(model_proto, path)
    split = len(names) == 2 and len(dims[0]) == 4 and len(dims[1]) == 4 and dims[0][1] == 3 and dims[1][1] == 1
    if len(names) not in (1, 2) or (len(names) == 2 and not split):
        raise MatteconvError(f"{path}: not a MODNet export: inputs {', '.join(names) or 'none'} (MODNet takes one "
                             "NxCxHxW image, or image Nx3xHxW + prev_alpha Nx1xHxW)")
    convs, n_joined = graph_convs(model_proto, path)
    if not convs:
        raise MatteconvError(f"{path}: not a MODNet export: no Conv node (first node {_node_name(graph.node[0])!r})")
    in_channels = int(convs[0].weight.shape[1])
    if in_channels not in (3, 4):
        raise MatteconvError(f"{path}: not a MODNet export: the first Conv {convs[0].name!r} takes {in_channels} "
                             "channels; MODNet takes 3 (RGB) or 4 (RGB + previous alpha)")
    if split and in_channels != 4:
        raise MatteconvError(f"{path}: not a MODNet export: two inputs but the first Conv takes {in_channels} channels")
    probe = execution_convs(MODNet(in_channels, 32, split))
    at = next(i for i, (k, _) in enumerate(probe) if k == "hr_branch.tohr_enc2x.layers.0")
    hr = int(convs[at].weight.shape[0]) if at < len(convs) else 32
    if hr < 2:
        raise MatteconvError(f"{path}: not a MODNet export: Conv {convs[at].name!r} gives hr_channels={hr}")
    net = MODNet(in_channels, hr, split).eval()
    order = execution_convs(net)
    modules = dict(net.named_modules())
    for i, (qual, mod) in enumerate(order):
        if i >= len(convs):
            raise MatteconvError(f"{path}: not a MODNet export: the graph has {len(convs)} convolutions, MODNet "
                                 f"{len(order)} (the first one missing would be {qual})")
        c = convs[i]
        why = _fits(c, mod)
        if why:
            tuned = any(p.key == "runtime" and p.value == "onnxruntime" for p in model_proto.metadata_props)
            hint = ("; this is matteconv's `export --runtime onnxruntime` file, whose upsampled convolutions are "
                    "rewritten for onnxruntime (export/upsample_conv.py): import the `--runtime any` export of the "
                    "same checkpoint") if tuned else ""
            raise MatteconvError(f"{path}: not a MODNet export: Conv node {c.name!r} (convolution {i + 1} of "
                                 f"{len(order)}) does not fit MODNet's {qual}: {why}{hint}")
        parent, index = qual.rsplit(".", 1)
        container = modules[parent]
        after = container[int(index) + 1] if isinstance(container, nn.Sequential) and int(index) + 1 < len(
            container) else None
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(np.array(c.weight)))
        bn_params = _batchnorm_after(c, graph, consts)
        if isinstance(after, nn.BatchNorm2d):  # backbone: a bias-free conv, then BatchNorm
            if bn_params is not None:
                _set_bn(after, bn_params, c.bias, path, c.name)
            else:
                _identity_bn(after, c.bias)
        elif isinstance(after, IBNorm):
            with torch.no_grad():
                mod.bias.copy_(torch.from_numpy(c.bias) if c.bias is not None else torch.zeros_like(mod.bias))
            if bn_params is not None:
                _set_bn(after.bnorm, bn_params, None, path, c.name)
            else:  # the BatchNorm half already folded into the conv (export --fold-batchnorm)
                _identity_bn(after.bnorm, None)
        else:
            with torch.no_grad():
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(c.bias) if c.bias is not None else torch.zeros_like(mod.bias))
                elif c.bias is not None and np.any(c.bias):
                    raise MatteconvError(f"{path}: not a MODNet export: Conv node {c.name!r} has a bias where "
                                         f"MODNet's {qual} has none")
    if len(convs) > len(order):
        raise MatteconvError(f"{path}: not a MODNet export: Conv node {convs[len(order)].name!r} is one more than "
                             f"MODNet's {len(order)} convolutions")
    fc = net.lr_branch.se_block.fc
    for (node, w), lin in zip(_se_weights(graph, consts, path), (fc[0], fc[2])):
        if w.shape != tuple(lin.weight.shape):
            raise MatteconvError(f"{path}: not a MODNet export: {node.op_type} node {_node_name(node)!r} has weight "
                                 f"{w.shape[::-1]}, MODNet's SE block expects {tuple(lin.weight.shape)[::-1]}")
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
    untrained = zero_heads(net)
    opset = next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return net.eval(), {"in_channels": in_channels, "hr_channels": hr, "split_inputs": split, "convs": len(order),
                        "joined_parts": n_joined, "untrained": untrained, "opset": int(opset),
                        "producer": f"{model_proto.producer_name} {model_proto.producer_version}".strip(),
                        "input_names": names, "input_dims": dims}


def zero_heads(net: MODNet) -> list[str]:
    """Write the heads inference never runs (UNTRAINED_HEADS) as zeros; return their state_dict keys."""
    keys = []
    with torch.no_grad():
        for k, t in net.state_dict().items():
            if k.startswith(UNTRAINED_HEADS) and not k.endswith("num_batches_tracked"):
                t.fill_(1.0 if k.endswith("running_var") else 0.0)
                keys.append(k)
    return keys


def parity_size(dims: list[list]) -> tuple[int, int]:
    """The graph's static H x W, or DEFAULT_PARITY_SIZE for dynamic sizes."""
    h, w = dims[0][2:4] if len(dims[0]) == 4 else (None, None)
    return (int(h), int(w)) if h and w else DEFAULT_PARITY_SIZE


def check_parity(net: MODNet, model_proto, facts: dict, path, ckpt_where) -> "object":
    """export/parity.py's rule on the astronaut photo: the rebuilt model's PyTorch fp32 matte against
    onnxruntime's run of the given graph. Raises MatteconvError when it fails (nothing written)."""
    from ..backends import ort_session
    from ..export.onnx_export import _parity_feeds, parity_image, run_float64
    from ..export.parity import judge

    size = parity_size(facts["input_dims"])
    image = parity_image(size)
    feeds, targs = _parity_feeds(image, facts["in_channels"], facts["split_inputs"])
    names = facts["input_names"]
    feeds = dict(zip(names, feeds.values()))
    with torch.no_grad():
        ref = net(*[torch.from_numpy(t) for t in targs]).numpy()
    got = ort_session(model_proto.SerializeToString(), where=path).run(None, feeds)[0]
    if np.shape(got) != ref.shape:
        raise MatteconvError(f"{path}: its output has shape {np.shape(got)}, MODNet's matte {ref.shape}")
    return judge(got, ref, lambda: run_float64(net, targs), path, ckpt_where, "the rebuilt checkpoint vs onnxruntime"), size


def import_onnx(path: str | Path) -> ImportResult:
    """Read a MODNet ONNX export and rebuild its checkpoint (model in eval mode), parity-checked against the ONNX
    on a real photo. Raises MatteconvError for a file that is not MODNet, damaged, or fails parity."""
    path = Path(path)
    proto = read_onnx(path)
    net, facts = build_from_onnx(proto, path)
    parity, size = check_parity(net, proto, facts, path, path)
    res = ImportResult(net, facts["in_channels"], facts["hr_channels"], facts["split_inputs"], facts["opset"],
                       facts["producer"], facts["convs"], facts["joined_parts"], facts["untrained"], size,
                       parity.max_abs, parity.mean_abs, parity.tolerance, parity.vs_float64)
    return res


def save_imported(res: ImportResult, source: Path, out: str | Path) -> str:
    """Write the checkpoint in the released layout (`module.` keys, backbone twice), safetensors or torch.save by
    the suffix, atomically, with metadata (source file and sha256, untrained heads); return the weights hash."""
    from ..fileio import atomic_path, sha256_file
    from ..reference import check_checkpoint_name
    from .checkpoint import official_state_dict, weights_sha256

    out = Path(out)
    check_checkpoint_name(out)
    sd = official_state_dict(res.model)
    meta = {"matteconv_import_source": Path(source).name, "matteconv_import_source_sha256": sha256_file(source),
            "matteconv_untrained": ",".join(res.untrained), "in_channels": str(res.in_channels),
            "hr_channels": str(res.hr_channels),
            "matteconv_import_parity_max_abs": f"{res.max_abs:.3g}"}
    with atomic_path(out) as tmp:
        if out.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp), metadata=meta)
        else:
            torch.save({"state_dict": sd, "matteconv_metadata": meta}, str(tmp))
    return weights_sha256(sd)
