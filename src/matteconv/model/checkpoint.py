"""The one safe checkpoint loader used by every command.

Accepts what MODNet users actually have: bare state_dicts with or without DataParallel's `module.` prefix,
`{"state_dict": ...}`-style wrappers, the official layout with every backbone tensor twice
(`backbone.*` and `lr_branch.backbone.*`) or once, `num_batches_tracked` present or absent, `.safetensors`.
Never unpickles code (`weights_only=True`). Every failure is a MatteconvError naming the file and the cause.
Weights of any floating dtype torch stores are converted to float32: exactly for float16, bfloat16 and the
float8 kinds (each is a subset of float32), with a note when float64 values round; integer, complex, packed and
quantized weights are refused with one line.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import MatteconvError
from ..fileio import sha256_file
from .modnet import MODNet

FIRST_CONV = "backbone.model.features.0.0.weight"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params", "weights")
SHARED_PREFIX = ("backbone.", "lr_branch.backbone.")


@dataclass
class Checkpoint:
    """A loaded MODNet in eval mode plus what provenance needs."""

    model: MODNet
    path: Path
    sha256: str  # of the file, as `sha256sum` prints it
    in_channels: int
    weights_sha256: str = ""  # of the float32 tensors, whatever the file format (what golden sets record)
    notes: list[str] = field(default_factory=list)  # what loading changed (float64 rounded to float32)
    hr_channels: int = 32  # the official constructor's `hr_channels`, read from the weights (infer_architecture)


# Every value of these is a float32 value: the conversion is exact.
EXACT_IN_FLOAT32 = {torch.float32, torch.float16, torch.bfloat16} | {
    getattr(torch, n) for n in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
    if hasattr(torch, n)}
ZIP_MAGIC = b"PK\x03\x04"  # torch.save since 1.6
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46"  # older torch.save: a pickled magic number first
# What a file that is not a checkpoint usually starts with (torch.save writes a zip, or a pickle before 1.6).
FILE_SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                   b"\x1f\x8b": "gzip data", b"%PDF": "a PDF", b"\x7fELF": "a program (ELF)",
                   b"\x08": "probably an ONNX model (protobuf)", b"name:": "a Caffe prototxt", b"layer": "a Caffe prototxt",
                   b"aipp_op": "an AIPP config", b"{": "JSON text",
                   b"\x80": "a Python pickle not written by torch.save"}


def _read_raw(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise MatteconvError(f"{path}: not a readable safetensors file (truncated or corrupt): {e}") from None
    with open(path, "rb") as f:
        magic = f.read(8)
    if not magic.startswith((ZIP_MAGIC, LEGACY_MAGIC)):  # neither of torch.save's formats: never unpickle it
        what = next((v for k, v in FILE_SIGNATURES.items() if magic.startswith(k)), None)
        if what is None:
            what = "text" if magic and all(32 <= c < 127 or c in b"\t\r\n" for c in magic) else (
                "empty" if not magic else "unrecognised bytes")
        raise MatteconvError(f"{path}: not a PyTorch checkpoint (the file is {what}; torch.save writes a zip archive)")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower() or "unsupported global" in str(e).lower():
            # torch names the global it refused ("unsupported GLOBAL posix.system whose module ..." in 2.6+,
            # "Unsupported global: GLOBAL x.y was not an allowed global" before): only its dotted name is kept
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = found.group(1) if found else "objects"
            raise MatteconvError(
                f"{path}: refused: unpickling needs code ({what}); only plain tensors are loaded. "
                "Re-save it with torch.save(model.state_dict(), ...) in a trusted environment") from None
        raise MatteconvError(f"{path}: not a PyTorch checkpoint ({_first_sentence(e)})") from None
    except Exception as e:  # torch.load raises many types on damaged files (KeyError, RuntimeError, EOFError...)
        msg = _first_sentence(e)
        if magic.startswith(ZIP_MAGIC):
            raise MatteconvError(f"{path}: truncated or corrupt checkpoint archive ({msg})") from None
        raise MatteconvError(f"{path}: not a PyTorch checkpoint ({msg})") from None


def _first_sentence(e: Exception) -> str:
    """The first sentence of an exception's text, on one line (torch appends paragraphs of advice)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text.split(". ", 1)[0].rstrip(".")


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside the usual wrappers."""
    for _ in range(3):
        if isinstance(raw, dict) and not any(isinstance(v, torch.Tensor) for v in raw.values()):
            inner = next((raw[k] for k in WRAPPER_KEYS if isinstance(raw.get(k), dict)), None)
            if inner is None:
                break
            raw = inner
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, str) for k in raw):
        raise MatteconvError(f"{path}: not a checkpoint: expected a state_dict of tensors, got {type(raw).__name__}")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise MatteconvError(f"{path}: not a checkpoint: no tensors inside")
    return tensors


def canonical_key(k: str) -> str:
    """`module.lr_branch.backbone.x` -> `backbone.x`: one name per tensor."""
    while k.startswith("module."):
        k = k[len("module."):]
    if k.startswith(SHARED_PREFIX[1]):
        k = SHARED_PREFIX[0] + k[len(SHARED_PREFIX[1]):]
    return k


def normalize_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.`, drop `num_batches_tracked`, keep one copy of the shared backbone under `backbone.`."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked"):
            out.setdefault(canonical_key(k), v)
    return out


def infer_in_channels(sd: dict[str, torch.Tensor], path: Path) -> int:
    w = sd.get(FIRST_CONV)
    if w is None:
        raise MatteconvError(f"{path}: not a MODNet checkpoint: no {FIRST_CONV} (first backbone conv)")
    if w.ndim != 4 or w.shape[1] not in (3, 4):
        raise MatteconvError(f"{path}: {FIRST_CONV} has shape {tuple(w.shape)}; MODNet takes 3 or 4 input channels")
    return int(w.shape[1])


HR_PROBE = "hr_branch.tohr_enc2x.layers.0.weight"  # Conv2d(enc2x channels -> hr_channels, 1x1)
HR4X = "hr_branch.conv_hr4x.0.layers.0.weight"  # Conv2d(cat(hr4x, lr4x, img4x) -> 2*hr_channels, 3x3)
LR_CHANNELS = 32  # channels of lr8x (the LR branch's conv_lr8x output = MobileNetV2 enc_channels[2])


@dataclass(frozen=True)
class Architecture:
    """The arguments of the official `MODNet(in_channels, hr_channels)` constructor that a checkpoint was built
    with. Official code (ZHKKKe/MODNet, src/models/modnet.py): `MODNet(in_channels=3, hr_channels=32,
    backbone_arch='mobilenetv2', backbone_pretrained=True)`; hr_channels sets the width of the HR and fusion
    branches (hr, 2*hr, 3*hr + in_channels, int(hr / 2)...), in_channels the first backbone conv."""

    in_channels: int
    hr_channels: int


def infer_architecture(sd: dict[str, torch.Tensor], path: Path) -> Architecture:
    """Read (in_channels, hr_channels) from the weights' shapes: in_channels from the first backbone conv
    (C_out x C_in x 3 x 3), hr_channels from the HR branch's first 1x1 conv (hr x 16 x 1 x 1). The whole state
    dict is then checked against the model these build, so any other mismatch is still an error naming the
    tensor (`_check_against`)."""
    in_channels = infer_in_channels(sd, path)
    w = sd.get(HR_PROBE)
    if w is None:  # missing keys are reported, with the rest, by _check_against
        return Architecture(in_channels, 32)
    if w.ndim != 4 or w.shape[0] < 2:
        raise MatteconvError(f"{path}: {HR_PROBE} has shape {tuple(w.shape)}; MODNet's hr_channels (its dim 0) "
                             "must be at least 2 (the fusion head has int(hr_channels / 2) channels)")
    hr = int(w.shape[0])
    hr4x = sd.get(HR4X)
    official = 3 * hr + in_channels
    runnable = 2 * hr + LR_CHANNELS + in_channels
    if hr4x is not None and hr4x.ndim == 4 and hr4x.shape[1] == official != runnable:
        raise MatteconvError(
            f"{path}: {HR4X} takes {official} input channels (3*hr_channels + {in_channels}, the official "
            f"constructor's count at hr_channels={hr}), but MODNet's forward concatenates 2*hr_channels + "
            f"{LR_CHANNELS} + {in_channels} = {runnable} channels there: the official code cannot run this checkpoint "
            "either (it runs only at hr_channels=32); a trained lighter MODNet sizes that conv 2*hr + 32 + 3")
    return Architecture(in_channels, hr)


def build_modnet(arch: Architecture, split_inputs: bool = False) -> MODNet:
    """A fresh MODNet of this architecture (random weights, train mode)."""
    return MODNet(in_channels=arch.in_channels, hr_channels=arch.hr_channels, split_inputs=split_inputs)


def _check_against(model: MODNet, sd: dict[str, torch.Tensor], path: Path) -> None:
    expected = normalize_keys(model.state_dict())
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise MatteconvError(f"{path}: not a MODNet checkpoint: {'; '.join(parts)}")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise MatteconvError(f"{path}: shape mismatch at {k}: got {tuple(sd[k].shape)}, expected {tuple(v.shape)}")


def check_values(sd: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse damaged values before anything else looks at the tensors: NaN/Inf anywhere, or a negative BatchNorm
    running_var (its square root is NaN in every output). Runs before the backbone-copy check, so a damaged copy
    is reported as damage, not as two copies that differ. Raises MatteconvError naming the file and the tensor."""
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            bad = int((~torch.isfinite(v)).sum())
            raise MatteconvError(f"{path}: {bad} NaN/Inf value(s) in {k}")
        if k.endswith("running_var") and (v < 0).any():  # sqrt of a negative variance: NaN in every output
            raise MatteconvError(f"{path}: {int((v < 0).sum())} negative BatchNorm variance(s) in {k} "
                                 f"(min {float(v.min()):.3g}); the checkpoint is damaged: the model would output NaN")


def to_float32(sd: dict[str, torch.Tensor], path: Path, notes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Every tensor as float32: exact for the dtypes in EXACT_IN_FLOAT32; float64 rounds (a note says how far);
    anything else is refused, naming the tensor and its dtype."""
    out, rounded = {}, []
    for k, v in sd.items():
        if v.dtype in EXACT_IN_FLOAT32:
            out[k] = v.to(torch.float32)
        elif v.dtype == torch.float64:
            out[k] = v.to(torch.float32)
            changed = out[k].to(torch.float64) != v
            if changed.any():
                rounded.append(float((out[k].to(torch.float64) - v).abs().max()))
        else:
            kind = ("quantized" if v.is_quantized else "complex" if v.is_complex() else
                    "integer" if not v.is_floating_point() else "packed")
            raise MatteconvError(f"{path}: tensor {k} is {str(v.dtype).replace('torch.', '')} ({kind}); MODNet "
                                 "weights must be floating point (float32, float16, bfloat16 or float64)")
    if rounded and notes is not None:
        notes.append(f"{path}: float64 weights rounded to float32 in {len(rounded)} tensor(s) (max change "
                     f"{max(rounded):.3g})")
    return out


# --- the two backbone copies ---------------------------------------------------------------------------------

BACKBONE_COPIES = ("backbone", "lr_branch")
_BACKBONE_COPY: ContextVar[str | None] = ContextVar("matteconv_backbone_copy", default=None)


@contextmanager
def backbone_copy_choice(choice: str | None):
    """Within the block, checkpoints whose two backbone copies differ load the chosen one (`--backbone-copy`)."""
    if choice is not None and choice not in BACKBONE_COPIES:
        raise MatteconvError(f"--backbone-copy {choice!r}: expected one of {', '.join(BACKBONE_COPIES)}")
    token = _BACKBONE_COPY.set(choice)
    try:
        yield
    finally:
        _BACKBONE_COPY.reset(token)


def resolve_backbone_copies(sd: dict[str, torch.Tensor], path: Path, choice: str | None = None,
                            notes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Official MODNet checkpoints hold the shared backbone twice (`backbone.*`, `lr_branch.backbone.*`): MODNet
    passes one module to LRBranch, so only one copy can survive loading. When both copies are present and differ
    (a checkpoint edited or merged by hand), refuse, naming the first differing key, unless `choice`
    ('backbone' | 'lr_branch', default: the `--backbone-copy` of the running command) picks one; then drop the
    other copy. The official code keeps the lr_branch copy: torch's load_state_dict walks the module tree
    (backbone before lr_branch, the order MODNet.__init__ registers them) and copies every key it finds, so
    `lr_branch.backbone.*` is written last, whatever the key order (the official file also lists it last:
    reference/modnet_state_dict.tsv, rows 2 and 314)."""
    choice = choice if choice is not None else _BACKBONE_COPY.get()
    pairs: dict[str, list[str]] = {}
    for k in sd:
        bare = k
        while bare.startswith("module."):
            bare = bare[len("module."):]
        if bare.startswith(SHARED_PREFIX[1]):
            pairs.setdefault(SHARED_PREFIX[0] + bare[len(SHARED_PREFIX[1]):], [None, None])[1] = k
        elif bare.startswith(SHARED_PREFIX[0]):
            pairs.setdefault(bare, [None, None])[0] = k
    both = [(b, lr) for b, lr in pairs.values() if b is not None and lr is not None]
    differ = [(b, lr) for b, lr in both if not (sd[b].shape == sd[lr].shape and sd[b].dtype == sd[lr].dtype
                                                 and torch.equal(sd[b], sd[lr]))]
    if not differ:
        return sd
    b, lr = differ[0]
    how = (f"shapes {tuple(sd[b].shape)} and {tuple(sd[lr].shape)}" if sd[b].shape != sd[lr].shape else
           f"max |difference| {float((sd[b].double() - sd[lr].double()).abs().max()):.3g}")
    if choice is None:
        raise MatteconvError(
            f"{path}: the two copies of the shared backbone differ in {len(differ)} of {len(both)} tensors, first "
            f"at {b} vs {lr} ({how}); MODNet uses one backbone, so only one copy can load. The official code "
            "(ZHKKKe/MODNet) ends up with the lr_branch.backbone copy: pass --backbone-copy lr_branch to run what it "
            "runs, or --backbone-copy backbone for the other")
    drop = {x for pair in both for x in ([pair[0]] if choice == "lr_branch" else [pair[1]])}
    if notes is not None:
        notes.append(f"{path}: backbone copies differ in {len(differ)} tensor(s); using the {choice} copy "
                     "(--backbone-copy)")
    out = {k: v for k, v in sd.items() if k not in drop}
    if choice == "lr_branch":  # the kept copy must be the one normalize_keys finds first under backbone.*
        out = {canonical_key(k): v for k, v in out.items()}
    return out


def load_state_dict(path: str | Path, notes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its normalised MODNet state_dict in float32 (no model built)."""
    path = Path(path)
    if not path.exists():
        raise MatteconvError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise MatteconvError(f"{path}: is a folder, expected a checkpoint file")
    raw = _unwrap(_read_raw(path), path)
    check_values(raw, path)
    raw = resolve_backbone_copies(raw, path, notes=notes)
    return to_float32(normalize_keys(raw), path, notes)


def load_checkpoint(path: str | Path, split_inputs: bool = False) -> Checkpoint:
    """Load a MODNet checkpoint into a fresh model (eval mode, float32)."""
    path = Path(path)
    notes: list[str] = []
    sd = load_state_dict(path, notes)
    arch = infer_architecture(sd, path)
    model = build_modnet(arch, split_inputs)
    _check_against(model, sd, path)
    full = {k: v if k.endswith("num_batches_tracked") else sd[canonical_key(k)].to(v.dtype)
            for k, v in model.state_dict().items()}
    model.load_state_dict(full, strict=True)
    return Checkpoint(model.eval(), path, sha256_file(path), arch.in_channels, weights_sha256(sd), notes,
                      arch.hr_channels)



def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of the weights themselves (names, dtypes, shapes, bytes), independent of the file format.
    torch.save embeds a random serialization id, so file hashes cannot identify weights."""
    h = hashlib.sha256()
    for k, v in sorted(normalize_keys(state_dict).items()):
        t = v.detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def official_state_dict(model: MODNet) -> dict[str, torch.Tensor]:
    """The released checkpoints' layout: DataParallel `module.` prefix, backbone twice, num_batches_tracked."""
    return {f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}
