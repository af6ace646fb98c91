"""Layer-by-layer comparison of a converted model (ONNX or Caffe) against its PyTorch checkpoint, to find the
first layer where the conversion goes wrong.

How a candidate value is matched to a PyTorch module, without looking at any numbers:
- Every candidate node/layer carries the module path it came from: ONNX node names are module scopes
  (`/lr_branch/backbone/features.7/conv/conv.0/Conv`, uncalled containers like `model` left out, a child
  written with its container's name: `conv/conv.0`); Caffe layer names are the torch.fx module paths
  (`backbone.model.features.7.conv.0`, `hr_branch.conv_hr4x.1.layers.1/in/mvn`, `hr_branch.cat_2`, `alpha`).
- A node's value equals a module's output exactly when it is the module's only *sink*: the one node of the
  module's scope whose value no other node of that scope reads. Walking up from the node's own module, every
  ancestor whose sink it still is returns the same tensor; the outermost one (that returns a single tensor
  of that shape in PyTorch) is reported, so the table speaks in blocks (Conv2dIBNormRelu, InvertedResidual).
- Folds: a Conv followed by BatchNorm2d is written as one conv (ONNX constant folding, Caffe lowering), so its
  value is the BatchNorm's output. A Conv followed by IBNorm has only its BatchNorm half folded (ONNX:
  fold_ibnorm; Caffe: split into two convolutions): equal to no module output, so it is left unmatched.
- Caffe's in-place layers (ReLU) overwrite their input blob: only a blob's final value can be read.
Anything else (resizes and concats inside a branch, IBNorm's slices, SE internals) is listed as unmatched.

When a layer has diverged (two rules, either suffices):
- relative: max|d| / max|ref| over REL_THRESHOLD and JUMP times the previous matched layer's (a wrong weight);
- absolute, against what the stage's alpha tolerance allows: PyTorch runs in fp32 and in float64, which gives
  each layer's fp32 floor (max |fp32 - float64| there) and the alpha's. The alpha tolerance allows
  `headroom = tolerance / alpha floor` floors of error at the output; a layer whose error against float64 is
  over `headroom` times its own floor carries more error than the output could afford if it passed through at
  the floor's gain (an InstanceNorm that scales a tiny spread up: relative to the layer's range the error looks
  small, against the floor it is far out). The floor is at least 4 fp32 ulps of the layer's largest value.
  When some layer is over that budget, the error *starts* at the first layer carrying more than START_FLOORS
  floors (a faithful fp32 conversion stays within about 2: another kernel, the same rounding): that layer is
  named, not the later one where the error has grown past the budget.
The golden input compared is, by default, the one where the candidate's alpha is furthest from its golden alpha.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backends import ort_session
from ..errors import MatteconvError
from ..fileio import json_safe

REL_THRESHOLD = 1e-3  # relative error (max|d| / max|ref|) above which a layer counts as diverged
JUMP = 10.0  # ... and it must exceed the previous matched layer's relative error by this factor
FLOOR_ULPS = 4  # the smallest fp32 floor a layer is granted: this many ulps of its largest value
START_FLOORS = 4.0  # over budget somewhere: the error starts at the first layer carrying more floors than this
ROOT = ""  # the module path of the whole model


# ---- report --------------------------------------------------------------------------------------------

@dataclass
class LayerRow:
    index: int  # position in the candidate's execution order
    layer: str  # candidate node name (ONNX) or layer name (Caffe)
    op: str
    module: str  # outermost PyTorch module whose output this value is ("" = the model's output)
    block: str  # the block that module belongs to (Conv2dIBNormRelu, InvertedResidual, SEBlock, ...)
    modules: list[str]  # every module whose output it is, innermost first
    shape: tuple[int, ...]
    max_abs: float = float("nan")
    max_ref: float = float("nan")
    rel: float = float("nan")
    abs64: float = float("nan")  # max |candidate - PyTorch float64|
    floor: float = float("nan")  # max |PyTorch fp32 - PyTorch float64| (at least FLOOR_ULPS ulps of max|ref|)
    floors: float = float("nan")  # abs64 / floor: the candidate's error in fp32 floors (faithful: about 1-2)
    budget_ratio: float = float("nan")  # floors / headroom: over 1 = more than the alpha tolerance allows


@dataclass
class Unmatched:
    index: int
    layer: str
    op: str
    reason: str


@dataclass
class Divergence:
    layer: str
    module: str
    block: str
    op: str
    rel: float
    max_abs: float
    previous_layer: str | None
    previous_rel: float
    rule: str = "relative"  # relative | absolute (which rule fired first)
    budget_ratio: float = float("nan")


@dataclass
class CompareReport:
    reference: str
    candidate: str
    kind: str  # onnx | caffe
    golden: str
    input_name: str
    size: tuple[int, int]
    reference_dtype: str
    rows: list[LayerRow]
    unmatched: list[Unmatched]
    first_divergence: Divergence | None
    threshold: float = REL_THRESHOLD
    jump: float = JUMP
    alpha_max_abs: float = float("nan")  # candidate alpha vs PyTorch alpha
    reference_vs_golden: float = float("nan")  # PyTorch alpha vs the golden alpha (wrong checkpoint if large)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    alpha_tolerance: float = float("nan")  # the stage's max |d alpha| tolerance (golden manifest)
    alpha_floor: float = float("nan")  # PyTorch fp32 alpha vs float64 on this input
    headroom: float = float("nan")  # alpha_tolerance / alpha_floor: the floors of error a layer may carry
    inputs_alpha_error: dict[str, float] = field(default_factory=dict)  # candidate alpha vs golden, per input

    def worst(self, n: int = 10) -> list[LayerRow]:
        """The n rows with the largest relative error or share of the absolute budget, in execution order."""
        ranked = sorted((r for r in self.rows if np.isfinite(r.rel)),
                        key=lambda r: -max(r.rel / self.threshold, r.budget_ratio))[: max(n, 0)]
        return sorted(ranked, key=lambda r: r.index)

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


# ---- the candidate graph -------------------------------------------------------------------------------

@dataclass
class Node:
    index: int
    name: str  # node / layer name
    op: str
    value: str  # the tensor (ONNX) / blob (Caffe) read to capture this node's output
    inputs: list[int]  # indices of the producing nodes
    scope: str | None  # canonical torch module path, None when the name does not resolve
    sub: str = ""  # Caffe: the part after "/" (a helper layer inside the module)
    observable: bool = True  # False: a Caffe in-place successor overwrites it
    multi_output: bool = False


class ModuleTree:
    """The reference model's modules by canonical path (the first path PyTorch lists, `backbone.` for the
    shared backbone), plus every alias path, for resolving candidate names."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.by_path: dict[str, nn.Module] = dict(model.named_modules())
        self.canonical: dict[int, str] = {}
        for path, m in self.by_path.items():
            self.canonical.setdefault(id(m), path)
        self.alias: dict[str, str] = {p: self.canonical[id(m)]
                                      for p, m in model.named_modules(remove_duplicate=False)}

    def canon(self, path: str) -> str | None:
        return self.alias.get(path)

    def module(self, path: str) -> nn.Module:
        return self.by_path[path]

    @staticmethod
    def parent(path: str) -> str | None:
        if path == ROOT:
            return None
        return path.rsplit(".", 1)[0] if "." in path else ROOT

    def next_sibling(self, path: str) -> tuple[str, nn.Module] | None:
        parent = self.parent(path)
        if parent is None:
            return None
        children = list(self.module(parent).named_children())
        leaf = path.rsplit(".", 1)[-1]
        names = [n for n, _ in children]
        if leaf not in names or names.index(leaf) + 1 >= len(names):
            return None
        name, mod = children[names.index(leaf) + 1]
        return f"{parent}.{name}" if parent else name, mod

    def block_of(self, path: str) -> str:
        """Innermost enclosing block: Conv2dIBNormRelu, InvertedResidual, SEBlock or a MobileNetV2 feature."""
        from ..model.mobilenetv2 import InvertedResidual
        from ..model.modnet import Conv2dIBNormRelu, SEBlock

        p: str | None = path
        while p:
            m = self.by_path.get(p)
            parent = self.parent(p)
            if isinstance(m, (Conv2dIBNormRelu, InvertedResidual, SEBlock)) or \
                    (parent is not None and parent.endswith("model.features")):
                return p
            p = parent
        return path

    def resolve_onnx_scope(self, components: list[str]) -> str | None:
        """['lr_branch', 'backbone', 'features.7', 'conv', 'conv.0'] -> 'backbone.model.features.7.conv.0'."""
        cur, prev = ROOT, None
        for comp in components:
            seg = comp[len(prev) + 1:] if prev and comp.startswith(prev + ".") else comp
            prefix = f"{cur}." if cur else ""
            found = None
            best = None
            for path in self.alias:
                if not path.startswith(prefix) or path == cur:
                    continue
                rel = path[len(prefix):]
                if (rel == seg or rel.endswith("." + seg)) and (best is None or rel.count(".") < best):
                    found, best = path, rel.count(".")
            if found is None:
                return None
            cur, prev = found, comp
        return self.canon(cur)

    def resolve_caffe_name(self, name: str) -> tuple[str | None, str]:
        """'hr_branch.conv_hr4x.1.layers.1/in/mvn' -> ('hr_branch.conv_hr4x.1.layers.1.inorm', 'in/mvn');
        'hr_branch.cat_2' (an fx function node) -> ('hr_branch', ''); 'alpha' -> (None, '')."""
        base, _, sub = name.partition("/")
        canon = self.canon(base)
        if canon is not None:
            from ..model.modnet import IBNorm

            if sub and (sub == "in" or sub.startswith("in/")) and isinstance(self.by_path[canon], IBNorm):
                return f"{canon}.inorm", sub
            return canon, sub
        path = base
        while "." in path:  # strip the fx node name: `scope.op_name`
            path = path.rsplit(".", 1)[0]
            canon = self.canon(path)
            if canon is not None:
                return canon, sub
        return None, sub  # the output renamed `alpha`: see output_scope


def onnx_nodes(model, tree: ModuleTree) -> list[Node]:
    producers: dict[str, int] = {}
    nodes: list[Node] = []
    for node in model.graph.node:
        if node.op_type == "Constant" or not node.output:
            continue
        idx = len(nodes)
        parts = [p for p in node.name.split("/") if p]
        scope = tree.resolve_onnx_scope(parts[:-1]) if node.name.startswith("/") else None
        inputs = [producers[i] for i in node.input if i in producers]
        nodes.append(Node(idx, node.name or node.output[0], node.op_type, node.output[0], inputs, scope,
                          multi_output=len([o for o in node.output if o]) > 1))
        for o in node.output:
            producers[o] = idx
    return nodes


def output_scope(model: nn.Module, in_channels: int) -> str | None:
    """The module scope of the model's last op, as the Caffe exporter saw it (it renames that layer `alpha`)."""
    from ..export.caffe.capture import capture, scope

    try:
        gm = capture(model, {"img": (1, in_channels, 64, 64)})
    except MatteconvError:
        return None
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    return scope(out) if hasattr(out, "meta") else None


def caffe_nodes(proto, tree: ModuleTree, out_scope: str | None = None) -> list[Node]:
    current: dict[str, int] = {}  # blob -> node that last wrote it
    nodes: list[Node] = []
    for layer in proto.layer:
        if layer.type in ("Input", "Data", "DummyData"):
            continue
        idx = len(nodes)
        inputs = [current[b] for b in layer.bottom if b in current]
        scope, sub = tree.resolve_caffe_name(layer.name)
        if scope is None and layer.name == "alpha" and out_scope is not None:
            scope = tree.canon(out_scope)
        top = layer.top[0] if layer.top else layer.name
        nodes.append(Node(idx, layer.name, layer.type, top, inputs, scope, sub, multi_output=len(layer.top) > 1))
        for t in layer.top:
            if t in current:
                nodes[current[t]].observable = False  # overwritten in place
            current[t] = idx
    return nodes


# ---- matching --------------------------------------------------------------------------------------------

def _within(scope: str, module: str) -> bool:
    return module == ROOT or scope == module or scope.startswith(module + ".")


def _effective_scope(node: Node, nodes: list[Node], tree: ModuleTree) -> tuple[str | None, str | None]:
    """(the module scope the node's value belongs to, or None; why it can match no module output, or None)."""
    from ..model.modnet import IBNorm

    if node.scope is None:
        return None, "name carries no module path"
    conv = tree.by_path.get(node.scope)  # any node in a conv's scope: the conv itself, or its split parts + Adds
    if not isinstance(conv, nn.Conv2d):
        return node.scope, None
    sib = tree.next_sibling(node.scope)
    if sib is None:
        return node.scope, None
    sib_path, sib_mod = sib
    if isinstance(sib_mod, nn.BatchNorm2d):
        if any(n.scope == sib_path for n in nodes):  # BatchNorm kept as its own node: the conv output is raw
            return node.scope, None
        return sib_path, None  # BatchNorm folded into the conv: the value is the BatchNorm's output
    if isinstance(sib_mod, IBNorm) or type(sib_mod).__name__ == "_IBNormFolded":
        if any(n.scope is not None and _within(n.scope, f"{sib_path}.bnorm") for n in nodes):
            return node.scope, None
        return node.scope, "conv with IBNorm's BatchNorm half folded in: equals no module output"
    return node.scope, None


def match(nodes: list[Node], tree: ModuleTree) -> tuple[dict[int, list[str]], dict[int, str]]:
    """node index -> module paths whose output it is (innermost first); node index -> why unmatched."""
    eff: dict[int, str | None] = {}
    reasons: dict[int, str] = {}
    for n in nodes:
        eff[n.index], why = _effective_scope(n, nodes, tree)
        if why:
            reasons[n.index] = why
    consumers: dict[int, list[int]] = {n.index: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            consumers[i].append(n.index)
    # An unresolved node is counted inside every module its inputs come from, so it can only block a match.
    members_cache: dict[str, list[int]] = {}

    def members(module: str) -> list[int]:
        if module not in members_cache:
            out = []
            for n in nodes:
                s = eff[n.index]
                inside = _within(s, module) if s is not None else any(
                    eff[i] is not None and _within(eff[i], module) for i in n.inputs)
                if inside:
                    out.append(n.index)
            members_cache[module] = out
        return members_cache[module]

    sink_cache: dict[str, int | None] = {}

    def sink(module: str) -> int | None:
        if module not in sink_cache:
            mem = members(module)
            inside = set(mem)
            sinks = [i for i in mem if not any(c in inside for c in consumers[i])]
            sink_cache[module] = sinks[0] if len(sinks) == 1 else None
        return sink_cache[module]

    matched: dict[int, list[str]] = {}
    for n in nodes:
        if n.index in reasons:
            continue
        scope = eff[n.index]
        if scope is None:
            reasons[n.index] = "name carries no module path"
            continue
        chain = []
        m: str | None = scope
        while m is not None and sink(m) == n.index:
            chain.append(m)
            m = tree.parent(m)
        if not chain:
            reasons[n.index] = f"an intermediate value inside {scope or 'the model'}, not a module output"
        elif n.multi_output:
            reasons[n.index] = "a layer with several outputs"
        elif not n.observable:
            reasons[n.index] = "overwritten by an in-place layer after it (not observable)"
        else:
            matched[n.index] = chain
    return matched, reasons


# ---- running -------------------------------------------------------------------------------------------

def _torch_outputs(model: nn.Module, tree: ModuleTree, wanted: set[str], x: np.ndarray,
                   dtype: torch.dtype) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import copy

    model = copy.deepcopy(model).to(dtype).eval()
    mods = dict(model.named_modules())
    got: dict[str, np.ndarray] = {}
    handles = []

    def hook(path):
        def fn(_m, _inp, out):
            if isinstance(out, torch.Tensor):
                got[path] = out.detach().to(torch.float64).numpy().copy()  # copy: in-place ReLUs follow
        return fn

    for path in wanted:
        if path in mods:
            handles.append(mods[path].register_forward_hook(hook(path)))
    try:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        with torch.no_grad():
            alpha = model(t[:, :3], t[:, 3:4]) if model.split_inputs else model(t)
    finally:
        for h in handles:
            h.remove()
    got.setdefault(ROOT, alpha.detach().to(torch.float64).numpy())
    return got, alpha.detach().to(torch.float64).numpy()


def _onnx_outputs(path: Path, values: list[str], x: np.ndarray, threads: int) -> dict[str, np.ndarray]:
    import onnx

    model = onnx.load(str(path))
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        infos = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    except Exception:  # shape inference is a nicety here: unknown shapes are fine for onnxruntime
        infos = {}
    existing = {o.name for o in model.graph.output}
    for v in values:
        if v in existing:
            continue
        vi = infos.get(v) or onnx.helper.make_tensor_value_info(v, onnx.TensorProto.FLOAT, None)
        model.graph.output.append(vi)
    sess = ort_session(model.SerializeToString(), threads, f"{path} (with intermediate outputs)")
    inputs = sess.get_inputs()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(inputs) == 2:
        feeds = {inputs[0].name: x[:, :3], inputs[1].name: x[:, 3:4]}
    else:
        feeds = {inputs[0].name: x}
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    return dict(zip(names, outs))


def _candidate_size_onnx(model) -> tuple[tuple[int, int] | None, int]:
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    dims = [[d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim] for i in inputs]
    channels = sum(int(d[1] or 0) for d in dims if len(d) == 4)
    h, w = dims[0][2:4] if dims and len(dims[0]) == 4 else (None, None)
    return ((h, w) if h and w else None), channels


def _candidate_size_caffe(proto) -> tuple[tuple[int, int] | None, int]:
    shapes = [list(layer.input_param.shape[0].dim) for layer in proto.layer
              if layer.type == "Input" and layer.input_param.shape]
    shapes += [list(s.dim) for s in proto.input_shape]
    channels = sum(int(s[1]) for s in shapes if len(s) == 4)
    return (tuple(int(v) for v in shapes[0][2:4]) if shapes and len(shapes[0]) == 4 else None), channels


def worst_input(gset, candidate_path, threads: int = 2) -> tuple[int, dict[str, float]]:
    """(index, name -> max |alpha - golden|): the candidate (a model path, or an open backend with .run) run on
    every golden input (temporal sets fed the golden previous alpha), the input where it is furthest from its
    golden alpha first."""
    from ..backends import open_backend
    from .golden import model_input

    backend = candidate_path if hasattr(candidate_path, "run") else open_backend(candidate_path, threads)
    errors: dict[str, float] = {}
    try:
        for it, frame, prev in zip(gset.items, gset.frames(), gset.prev_alphas()):
            alpha = np.asarray(backend.run(model_input(frame, prev)), np.float64).reshape(gset.size)
            errors[it.name] = float(np.max(np.abs(alpha - it.golden_alpha())))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    names = [it.name for it in gset.items]
    worst = max(range(len(names)), key=lambda i: (errors[names[i]] if np.isfinite(errors[names[i]]) else np.inf))
    return worst, errors


def _pick_input(gset, input_name: str | None) -> int:
    names = [it.name for it in gset.items]
    if input_name is None:
        return 0
    if input_name not in names:
        raise MatteconvError(f"{gset.root}: no input named {input_name!r} (have: {', '.join(names)})")
    return names.index(input_name)


def compare_models(reference_ckpt: str | Path, candidate_path: str | Path, golden_dir: str | Path,
                   input_name: str | None = None, dtype: torch.dtype = torch.float32,
                   threshold: float = REL_THRESHOLD, jump: float = JUMP, threads: int = 2) -> CompareReport:
    """Run one golden input through the checkpoint (PyTorch, hooks) and the candidate (.onnx or .prototxt
    with its .caffemodel), compare every value that is exactly a PyTorch module's output, find the first
    layer whose relative error jumps."""
    from ..model.checkpoint import load_checkpoint
    from .golden import load_golden, model_input

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    candidate_path = Path(candidate_path)
    suffix = candidate_path.suffix.lower()
    if suffix not in (".onnx", ".prototxt"):
        raise MatteconvError(f"{candidate_path}: compare takes an .onnx or a .prototxt (with its .caffemodel)")
    if not candidate_path.is_file():
        raise MatteconvError(f"{candidate_path}: not found")
    gset = load_golden(golden_dir)
    ckpt = load_checkpoint(reference_ckpt)
    tree = ModuleTree(ckpt.model)
    if ckpt.in_channels != gset.in_channels:
        raise MatteconvError(f"{reference_ckpt}: takes {ckpt.in_channels} input channels, the golden set "
                             f"{gset.root} was made for {gset.in_channels}")
    gh, gw = gset.size

    def size_error(size, channels):
        if size is not None and tuple(size) != (gh, gw):
            raise MatteconvError(f"{candidate_path}: fixed input size {size[0]}x{size[1]} differs from the golden "
                                 f"set's {gh}x{gw} ({gset.root}); make a golden set at {size[0]}x{size[1]} "
                                 f"(matteconv golden make --size {size[0]}x{size[1]}) or export at {gh}x{gw}")
        if channels and channels != ckpt.in_channels:
            raise MatteconvError(f"{candidate_path}: takes {channels} input channels, {reference_ckpt} takes "
                                 f"{ckpt.in_channels}")

    # 1. the candidate graph and the match, before anything runs
    if suffix == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(candidate_path), load_external_data=False)
        except Exception as e:
            raise MatteconvError(f"{candidate_path}: not a readable ONNX model ({e})") from None
        size_error(*_candidate_size_onnx(proto))
        nodes = onnx_nodes(proto, tree)
        kind = "onnx"
    else:
        from ..export.caffe.writer import read_prototxt

        proto = read_prototxt(candidate_path)
        size_error(*_candidate_size_caffe(proto))
        nodes = caffe_nodes(proto, tree, output_scope(ckpt.model, ckpt.in_channels))
        kind = "caffe"
    matched, reasons = match(nodes, tree)
    timings["match"] = time.perf_counter() - t0

    # 2. the input: the one named, else the one where the candidate is furthest from its golden alpha
    input_errors: dict[str, float] = {}
    if input_name is None and len(gset.items) > 1:
        idx, input_errors = worst_input(gset, candidate_path, threads)
    else:
        idx = _pick_input(gset, input_name)
    frame = gset.frames()[idx]
    prev = gset.prev_alphas()[idx]
    x64 = model_input(frame, prev, np.float64)

    # 3. PyTorch, hooked on every matched module
    t1 = time.perf_counter()
    wanted = {m for chain in matched.values() for m in chain}
    ref, ref_alpha = _torch_outputs(ckpt.model, tree, wanted, x64, dtype)
    other = torch.float32 if dtype == torch.float64 else torch.float64
    ref_other, alpha_other = _torch_outputs(ckpt.model, tree, wanted, x64, other)
    (ref32, alpha32), (ref64, alpha64) = (((ref, ref_alpha), (ref_other, alpha_other)) if other == torch.float64
                                          else ((ref_other, alpha_other), (ref, ref_alpha)))
    timings["torch"] = time.perf_counter() - t1

    # 4. the candidate, with every matched value as an extra output
    t2 = time.perf_counter()
    x32 = x64.astype(np.float32)
    values = [nodes[i].value for i in sorted(matched)]
    if kind == "onnx":
        got = _onnx_outputs(candidate_path, values, x32, threads)
        out_name = proto.graph.output[0].name
        cand_alpha = got[out_name]
    else:
        from ..export.caffe.runner import CaffeBackend

        with CaffeBackend(candidate_path) as backend:
            cand_alpha = backend.run(x32, blobs=tuple(dict.fromkeys(values)))
            got = dict(backend.last_blobs)
    timings["candidate"] = time.perf_counter() - t2

    # 5. compare, in the candidate's execution order
    rows: list[LayerRow] = []
    unmatched: list[Unmatched] = []
    for n in nodes:
        if n.index not in matched:
            unmatched.append(Unmatched(n.index, n.name, n.op, reasons.get(n.index, "no module output")))
            continue
        chain = matched[n.index]
        c = got.get(n.value)
        usable = [m for m in chain if m in ref and c is not None and ref[m].shape == tuple(c.shape)]
        # keep the contiguous innermost run that PyTorch actually returned (containers never called drop out)
        keep = []
        for m in chain:
            if m not in usable:
                break
            keep.append(m)
        if not keep:
            why = "PyTorch returns no single tensor of that shape there" if c is not None else "not captured"
            unmatched.append(Unmatched(n.index, n.name, n.op, f"{why} ({chain[0] or 'model output'})"))
            continue
        module = keep[-1]
        r, cv = ref[module], np.asarray(c, dtype=np.float64)
        d = float(np.max(np.abs(cv - r))) if r.size else 0.0
        mref = float(np.max(np.abs(r))) if r.size else 0.0
        d64 = float(np.max(np.abs(cv - ref64[module]))) if r.size else 0.0
        floor = float(np.max(np.abs(ref32[module] - ref64[module]))) if r.size else 0.0
        floor = max(floor, FLOOR_ULPS * float(np.spacing(np.float32(mref))))
        rows.append(LayerRow(n.index, n.name, n.op, module, tree.block_of(module), keep, tuple(int(s) for s in r.shape),
                             d, mref, d / (mref + 1e-12), d64, floor))

    tolerance = float(gset.tolerance(kind)["max_abs"])
    alpha_floor = float(np.max(np.abs(alpha32 - alpha64)))
    headroom = tolerance / max(alpha_floor, FLOOR_ULPS * float(np.spacing(np.float32(1.0))))
    for r in rows:
        r.floors = r.abs64 / r.floor if r.floor > 0 else float("inf")
        r.budget_ratio = r.floors / headroom
    first = first_divergence(rows, threshold, jump)

    alpha_diff = float(np.max(np.abs(np.asarray(cand_alpha, np.float64).reshape(ref_alpha.shape) - ref_alpha)))
    gold = gset.items[idx].golden_alpha().astype(np.float64)
    ref_gold = float(np.max(np.abs(ref_alpha[0, 0] - gold))) if gold.shape == ref_alpha.shape[2:] else float("nan")
    return CompareReport(str(reference_ckpt), str(candidate_path), kind, str(gset.root), gset.items[idx].name,
                         (gh, gw), str(dtype).replace("torch.", ""), rows, unmatched, first, threshold, jump,
                         alpha_diff, ref_gold, time.perf_counter() - t0, timings, tolerance, alpha_floor, headroom,
                         input_errors)


def first_divergence(rows: list[LayerRow], threshold: float = REL_THRESHOLD, jump: float = JUMP) -> Divergence | None:
    """The first row (execution order) that is non-finite or jumps in relative error; else, when some row is over
    the absolute budget (budget_ratio > 1), the first row carrying more than START_FLOORS fp32 floors (where that
    error starts; see the module docstring)."""
    over = any(r.budget_ratio > 1 for r in rows)
    prev_row = None
    for r in rows:
        prev_rel = prev_row.rel if prev_row is not None else 0.0
        rule = None
        if not np.isfinite(r.rel) or (r.rel > threshold and r.rel > jump * prev_rel):
            rule = "relative"
        elif over and r.floors > START_FLOORS:
            rule = "absolute"
        if rule:
            return Divergence(r.layer, r.module, r.block, r.op, r.rel, r.max_abs,
                              prev_row.layer if prev_row else None, prev_rel, rule, r.budget_ratio)
        prev_row = r
    return None
