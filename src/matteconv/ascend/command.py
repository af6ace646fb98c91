"""Build the exact atc/omg argv for a model, and refuse models that Ascend would convert wrongly or reject.

The argv is a list, never a shell string: paths with spaces or quotes reach the tool unchanged. `shlex.join` is
used only to show the user a command they can paste on a machine with the toolkit.

Flags (CANN ATC guide, docs/design.md section 4): `--framework=5` ONNX / `0` Caffe, `--model`, `--weight`
(Caffe), `--input_shape=name:1,3,H,W;name2:...`, `--insert_op_conf`, `--soc_version`, `--output` (atc appends
.om), `--log=error`, `--input_format=NCHW` for ONNX. OMG (old DDK) takes Caffe or TensorFlow only.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MatteconvError

SAFE_OPSETS = range(11, 16)  # ONNX opsets ATC parses across CANN versions (docs/design.md section 4)
# --soc_version values documented for atc (CANN ATC parameter page; cann.SOCS has the ones with board notes and
# CANN limits), and the SoCs the AIPP operator's own tables name (ascend opp aipp_comm.py
# STC_AIPP_SUPPORT_SOC_VERSION_SET). Anything else is refused up front (`om --force` passes it on with a warning:
# newer CANN versions add SoCs): atc itself would fail late with a message far from the cause.
KNOWN_SOC_VERSIONS = ("Ascend310", "Ascend310B1", "Ascend310B2", "Ascend310B3", "Ascend310B4", "Ascend310P1",
                      "Ascend310P3", "Ascend910A", "Ascend910B", "Ascend910ProA", "Ascend910ProB",
                      "Ascend910PremiumA", "Ascend910B1", "Ascend910B2", "Ascend910B3", "Ascend910B4",
                      "Hi3796CV300ES", "Hi3796CV300CS", "SD3403", "Ascend610", "Ascend710", "Ascend615",
                      "Ascend610Lite", "Ascend310B", "Ascend910", "Ascend910_93", "AS31XM1", "BS9SX1A", "BS9SX2A",
                      "MC61AM21A")


def check_soc_version(soc_version: str) -> None:
    """Raise MatteconvError (one line, with the known list) for a --soc-version atc does not document."""
    from .cann import SOCS

    known = list(dict.fromkeys([*SOCS, *KNOWN_SOC_VERSIONS]))
    if soc_version in known:
        return
    near = next((k for k in known if k.lower() == str(soc_version).lower()), None)
    hint = f"did you mean {near}? " if near else ""
    raise MatteconvError(f"--soc-version {soc_version!r}: not a SoC atc knows ({hint}known: {', '.join(known)})")


@dataclass
class ModelInfo:
    """What the compiler needs to know about a model file."""

    kind: str  # onnx | caffe
    path: Path
    inputs: list[tuple[str, tuple[int, ...]]]  # name, shape (0 or -1 = unknown)
    weight: Path | None = None
    opset: int | None = None
    problems: list[str] = field(default_factory=list)  # Ascend traps found


# --- ONNX -----------------------------------------------------------------------------------------------------

def inspect_onnx(path: Path) -> ModelInfo:
    """Inputs (excluding initializers) and opset (the op rules are in rules.py)."""
    import onnx

    from ..export.onnx.passes import exported_runtime

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ...
        raise MatteconvError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    if not model.graph.node and not model.graph.input and not model.opset_import:
        raise MatteconvError(f"{path}: not a readable ONNX model (no graph in it)")
    inits = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else 0
                     for d in vi.type.tensor_type.shape.dim)
        inputs.append((vi.name, dims))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    info = ModelInfo("onnx", path, inputs, opset=opset)
    runtime = exported_runtime(model)
    if runtime != "any":  # the ort-* passes (export/onnx/passes): half_pixel Resizes, which atc computes as asymmetric
        info.problems.append(f"{path}: exported with --runtime {runtime} (tuned for that runtime, with half_pixel "
                             "Resizes that atc computes as asymmetric); export again with --runtime any for atc")
    if opset is None or opset not in SAFE_OPSETS:
        info.problems.append(f"{path}: ONNX opset {opset} is outside {SAFE_OPSETS.start}..{SAFE_OPSETS.stop - 1}, "
                             "the range ATC parses safely; re-export with opset 11..15")
    return info


def _all_nodes(graph):
    """Every node, subgraphs included (`layer_types` names the nodes --keep-fp32 may list)."""
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == a.GRAPH:
                yield from _all_nodes(a.g)
            for g in a.graphs:
                yield from _all_nodes(g)


# --- Caffe ----------------------------------------------------------------------------------------------------

_CAFFE_TOK = re.compile(r'\s+|#[^\n]*|[{}:]|"(?:[^"\\]|\\.)*"|[^\s{}:#"]+')


def _caffe_parse(text: str, path: Path) -> dict:
    """Protobuf text -> nested dict of lists (light; enough for input shapes and layer names)."""
    toks = [t for t in _CAFFE_TOK.findall(text) if not t.isspace() and not t.startswith("#")]
    stack: list[dict] = [{}]
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "}":
            if len(stack) == 1:
                raise MatteconvError(f"{path}: unbalanced '}}' in prototxt")
            stack.pop()
            i += 1
            continue
        if i + 1 >= len(toks):
            raise MatteconvError(f"{path}: prototxt ends after {t!r}")
        nxt = toks[i + 1]
        if nxt == "{" or (nxt == ":" and i + 2 < len(toks) and toks[i + 2] == "{"):
            child: dict = {}
            stack[-1].setdefault(t, []).append(child)
            stack.append(child)
            i += 2 if nxt == "{" else 3
        elif nxt == ":" and i + 2 < len(toks):
            v = toks[i + 2]
            stack[-1].setdefault(t, []).append(v[1:-1] if v.startswith('"') else v)
            i += 3
        else:
            raise MatteconvError(f"{path}: cannot parse prototxt near {t!r}")
    if len(stack) != 1:
        raise MatteconvError(f"{path}: unbalanced '{{' in prototxt")
    return stack[0]


def inspect_caffe(path: Path) -> ModelInfo:
    """Inputs from `input` + `input_shape`/`input_dim`, or Input layers; the caffemodel beside it."""
    try:
        net = _caffe_parse(path.read_text(encoding="utf-8", errors="replace"), path)
    except OSError as e:
        raise MatteconvError(f"{path}: cannot read ({e.strerror or e})") from None
    names = net.get("input", [])
    inputs: list[tuple[str, tuple[int, ...]]] = []
    shapes = [tuple(int(d) for d in s.get("dim", [])) for s in net.get("input_shape", [])]
    dims = [int(d) for d in net.get("input_dim", [])]
    for k, name in enumerate(names):
        if k < len(shapes):
            inputs.append((name, shapes[k]))
        elif dims and len(dims) >= 4 * (k + 1):
            inputs.append((name, tuple(dims[4 * k: 4 * k + 4])))
        else:
            inputs.append((name, ()))
    layers = net.get("layer", []) or net.get("layers", [])
    for layer in layers:
        if layer.get("type", [""])[0] in ("Input", "Data") and layer.get("input_param"):
            sh = layer["input_param"][0].get("shape", [])
            for top, s in zip(layer.get("top", []), sh):
                inputs.append((top, tuple(int(d) for d in s.get("dim", []))))
    weight = path.with_suffix(".caffemodel")
    info = ModelInfo("caffe", path, inputs, weight=weight)
    info.layers = layers  # type: ignore[attr-defined]  (layer names and types for --keep-fp32)
    return info


OMG_DIR_CHARS = re.compile(r"[A-Za-z0-9_]*")
OMG_FILE_CHARS = re.compile(r"[A-Za-z0-9_.]*")


def omg_path_warnings(paths: list[Path | None]) -> list[str]:
    """The old DDK's omg documents only letters, digits and `_` in folders (and `.` in file names) for --model
    and --weight (Atlas 300 DDK 3.0 "Constraints and Parameters", support.huaweicloud.com
    mcg-atlas300app3000/atlasmcg_05_c30_0004.html); other characters may make it fail far from the cause."""
    out = []
    for path in filter(None, paths):
        parts = [q for q in Path(path).parts if q not in ("/", ".", "..")]
        bad = [q for q in parts[:-1] if not OMG_DIR_CHARS.fullmatch(q)]
        if parts and not OMG_FILE_CHARS.fullmatch(parts[-1]):
            bad.append(parts[-1])
        if bad:
            out.append(f"{path}: omg documents only letters, digits, '_' (and '.' in file names) in model paths; "
                       f"{', '.join(repr(b) for b in bad)} may be rejected: rename if omg fails")
    return out


# --- both -----------------------------------------------------------------------------------------------------

def inspect_model(path: str | Path) -> ModelInfo:
    p = Path(path)
    if p.is_dir():
        raise MatteconvError(f"{p}: is a folder, not a model file (.onnx, or .prototxt with its .caffemodel)")
    if not p.is_file():
        raise MatteconvError(f"{p}: model file not found")
    if p.stat().st_size == 0:
        raise MatteconvError(f"{p}: empty file (0 bytes), not a readable "
                             f"{'Caffe prototxt' if p.suffix.lower() == '.prototxt' else 'ONNX model'}")
    if p.suffix.lower() == ".onnx":
        return inspect_onnx(p)
    if p.suffix.lower() == ".prototxt":
        info = inspect_caffe(p)
        if not info.weight.is_file():
            raise MatteconvError(f"{p}: weights {info.weight.name} not found beside it (same stem, .caffemodel)")
        return info
    raise MatteconvError(f"{p}: expected a .onnx or .prototxt model")


def framework_problems(info: ModelInfo, tool: str) -> list[str]:
    """What no --force can get past: an opset atc does not parse, ONNX given to omg."""
    out = list(info.problems)
    if tool == "omg" and info.kind != "caffe":
        out.append(f"{info.path}: omg (old DDK) converts Caffe or TensorFlow only, not ONNX: use atc, or "
                   "convert with `matteconv caffe` first")
    return out


def model_problems(info: ModelInfo, tool: str) -> list[str]:
    """Every known Ascend trap in this model for this tool (empty = none found): the framework problems, then
    each error of the layer/op rules (rules.py) as one line naming the layer, the rule and its source."""
    from .rules import check_model, compiler_for

    out = framework_problems(info, tool)
    if tool == "omg" and info.kind != "caffe":
        return out
    return out + check_model(info.path, compiler_for(info.kind, tool).name).lines("error")


def parse_input_shape(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """'image:1,3,384,384;prev:1,1,384,384' -> [(name, shape)]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, dims = part.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape:
            raise MatteconvError(f"input shape {part!r} is not name:d0,d1,... (e.g. input:1,3,384,384)")
        if any(d <= 0 for d in shape):
            raise MatteconvError(f"--input-shape {part}: dimensions must be positive integers (e.g. "
                                 f"{name}:1,3,384,384)")
        out.append((name, shape))
    return out


def check_input_shape(info: ModelInfo, inputs: list[tuple[str, tuple[int, ...]]]) -> None:
    """An --input-shape may fill in a model's unknown (dynamic) dimensions, never contradict its fixed ones."""
    model = dict(info.inputs)
    for name, shape in inputs:
        fixed = model.get(name)
        if not fixed:
            continue  # unknown name (reported elsewhere) or no shape recorded
        if len(fixed) != len(shape) or any(f > 0 and f != d for f, d in zip(fixed, shape)):
            have = ",".join(str(f) if f > 0 else "?" for f in fixed)
            raise MatteconvError(f"--input-shape {name}:{','.join(map(str, shape))} contradicts {info.path}, whose "
                                 f"input {name!r} is fixed at {have}")


def format_input_shape(inputs: list[tuple[str, tuple[int, ...]]]) -> str:
    bad = [n for n, s in inputs if not s or any(d <= 0 for d in s)]
    if bad:
        raise MatteconvError(f"model input(s) {', '.join(bad)} have unknown dimensions: pass --input-shape "
                             "name:1,3,H,W")
    return ";".join(f"{n}:{','.join(str(d) for d in s)}" for n, s in inputs)


def build_argv(tool: str, tool_path: str | Path, info: ModelInfo, output_stem: str | Path,
               aipp: str | Path | None = None, soc_version: str = "Ascend310",
               inputs: list[tuple[str, tuple[int, ...]]] | None = None) -> list[str]:
    """The compiler's argv (list of strings) for this model."""
    if tool not in ("atc", "omg"):
        raise MatteconvError(f"unknown tool {tool!r} (atc or omg)")
    if tool == "omg" and info.kind != "caffe":
        raise MatteconvError(f"{info.path}: omg (old DDK) converts Caffe only, not ONNX: use --tool atc")
    argv = [str(tool_path)]
    if info.kind == "onnx":
        argv += ["--framework=5", f"--model={info.path}"]
    else:
        argv += ["--framework=0", f"--model={info.path}", f"--weight={info.weight}"]
    if inputs:
        check_input_shape(info, inputs)
    if tool == "atc" or inputs:  # omg reads fixed shapes from the prototxt; pass them only when asked
        argv.append(f"--input_shape={format_input_shape(inputs or info.inputs)}")
    if info.kind == "onnx" and tool == "atc":
        argv.append("--input_format=NCHW")
    if aipp is not None:
        argv.append(f"--insert_op_conf={aipp}")
    if tool == "atc":
        argv.append(f"--soc_version={soc_version}")
    argv.append(f"--output={output_stem}")
    if tool == "atc":
        argv.append("--log=error")
    return argv


def display(argv: list[str]) -> str:
    """A copy-pasteable command line (display only: we never run a string)."""
    return shlex.join(argv)


# --- precision: --precision_mode and --keep_dtype ---------------------------------------------------------------
# ATC --precision_mode values (CANN ATC parameter page, atlasatcparam_16_0068 in canncommercial/900; default
# force_fp16). --keep_dtype=FILE: one original layer name or `OpType::TYPE` per line; it acts under force_fp16
# and is ignored under must_keep_origin_dtype (ATC guide atlasatc_16_0105, canncommercial/80RC22; Ascend310 listed).
PRECISION_MODES = ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_fp32_to_fp16", "must_keep_origin_dtype",
                   "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16")
MIX_BREAKS_DECONV = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
                     "allow_fp32_to_fp16")
# On Ascend310, Conv2D computes in fp16 whatever the mode and Power has only an fp16 kernel (canndev conv2d.py,
# power.py; aic-ascend310-ops-info.ini): keeping these in fp32 cannot work there.
FP16_ONLY_ON_310 = {"Conv", "ConvTranspose", "Convolution", "Deconvolution", "Power", "Pow"}
OPTYPE = "OpType::"


def precision_warnings(mode: str | None, keep: list[str], layer_types: dict[str, str], soc_version: str) -> list[str]:
    """Raise on an undocumented mode; warn on the combinations known to do nothing or to hurt accuracy."""
    out = []
    if mode is not None and mode not in PRECISION_MODES:
        raise MatteconvError(f"--precision-mode {mode!r} is not a documented atc value ({', '.join(PRECISION_MODES)})")
    if mode in MIX_BREAKS_DECONV:
        out.append(f"--precision-mode {mode}: recent CANN (ATC 8.5) is reported to collapse ConvTranspose accuracy "
                   "under mixed precision (https://github.com/Ascend/pytorch/issues/125; only must_keep_origin_dtype "
                   "fixed it); the Caffe export's bilinear upsampling is a Deconvolution: prefer force_fp16 with "
                   "--keep-fp32, and check the result with `matteconv verify --om`")
    if keep and mode == "must_keep_origin_dtype":
        out.append("--keep-fp32 has no effect under --precision-mode must_keep_origin_dtype (atc ignores --keep_dtype "
                   "there; every layer already keeps its dtype)")
    if keep and soc_version == "Ascend310":
        stuck = [e for e in keep if (e[len(OPTYPE):] if e.startswith(OPTYPE) else layer_types.get(e)) in FP16_ONLY_ON_310]
        if stuck:
            out.append(f"--keep-fp32: on Ascend310 convolutions and Power compute in fp16 whatever is asked: "
                       f"{', '.join(stuck[:5])}{' ...' if len(stuck) > 5 else ''} will stay fp16")
    return out


def layer_types(info: ModelInfo) -> dict[str, str]:
    """Original layer name -> type: ONNX node names, or Caffe layer names (what --keep_dtype names)."""
    if info.kind == "caffe":
        return {la.get("name", [""])[0]: la.get("type", [""])[0] for la in getattr(info, "layers", [])}
    import onnx

    model = onnx.load(str(info.path), load_external_data=False)
    return {n.name: n.op_type for n in _all_nodes(model.graph) if n.name}


def keep_dtype_entries(spec: list[str], types: dict[str, str], where: Path) -> list[str]:
    """Check `--keep-fp32` entries (layer names, `OpType::TYPE`) against the model; de-duplicated, in order."""
    out = []
    for entry in (e.strip() for e in spec):
        if not entry:
            continue
        if any(c in entry for c in "\r\n"):
            raise MatteconvError(f"--keep-fp32 entry {entry!r} contains a line break")
        if entry.startswith(OPTYPE):
            if not entry[len(OPTYPE):]:
                raise MatteconvError(f"--keep-fp32 entry {entry!r} names no op type (OpType::MVN)")
        elif entry not in types:
            raise MatteconvError(f"--keep-fp32: {where} has no layer named {entry!r} (give original "
                                 f"{'node' if where.suffix == '.onnx' else 'layer'} names, or OpType::TYPE)")
        out.append(entry)
    return list(dict.fromkeys(out))


def render_keep_dtype(entries: list[str]) -> str:
    """atc's --keep_dtype file: one entry per line."""
    return "".join(f"{e}\n" for e in entries)


def precision_flags(mode: str | None, keep_file: Path | None) -> list[str]:
    return ([f"--precision_mode={mode}"] if mode else []) + ([f"--keep_dtype={keep_file}"] if keep_file else [])
