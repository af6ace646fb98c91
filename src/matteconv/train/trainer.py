"""`matteconv train`: MODNet with its three objectives, on the built-in synthetic set or a user's data.

The defaults are the official recipe (ZHKKKe/MODNet src/trainer.py: SGD, momentum 0.9, lr 0.01, StepLR every
quarter of the run, gamma 0.1). Everything a run depends on is in TrainConfig and the sample index, so
`--seed` repeats a run on the same machine, `--resume` continues it exactly from OUT's state file, and
`torchrun --nproc_per_node N` splits each global batch over N processes with the same result.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import MatteconvError
from ..fileio import atomic_path, check_output_file, refuse_overwrite
from ..heap import keep_freed_memory
from ..model.checkpoint import load_checkpoint, official_state_dict, weights_sha256
from ..model.grad_ops import upsampled_head
from ..model.modnet import MODNet
from ..reference import check_checkpoint_name
from . import distributed
from .data import ClipSource, FolderSource, PeopleSource, SyntheticSource, to_batch
from .losses import modnet_losses, trimap
from .widen import IMAGE_SLOT, widen_to_temporal

OPTIMIZERS = ("sgd", "adam")
# MODNet's three branches (official module names); lr_branch includes the backbone.
FREEZABLE = ("lr_branch", "hr_branch", "f_branch")
STATE_KEYS = ("config", "step", "model", "optimizer", "scheduler", "losses")


@dataclass
class TrainConfig:
    in_channels: int = 3
    hr_channels: int | None = None  # official MODNet's hr_channels: 32, or the --init checkpoint's, when None
    size: tuple[int, int] = (256, 256)
    batch_size: int = 4            # global: split over the processes of a distributed run
    steps: int = 1000
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    lr_step: float = 0.25          # StepLR period as a fraction of the run
    lr_gamma: float = 0.1
    seed: int = 0
    init: str | None = None        # checkpoint to start from (3-channel -> widened when in_channels is 4)
    images: str | None = None      # user data: composites ...
    alphas: str | None = None      # ... and alphas with the same names
    clips: str | None = None       # user clips in VideoMatte240K's layout (temporal)
    backgrounds: str | None = None
    people: str | None = None      # clips of real people (people/clips.py) cut out by this checkpoint's matte
    freeze_norm: bool = False      # BatchNorm keeps its running statistics (fine-tuning a trained model)
    freeze: tuple[str, ...] = ()   # submodules whose weights stay as loaded, e.g. ("lr_branch",)
    only_previous_alpha: bool = False  # train only the weights that read channel 3 (the widened convolutions')
    p_blank: float = 0.3
    p_affine: float = 0.5
    p_light: float = 0.5
    device: str = "cpu"

    def check(self) -> None:
        if self.in_channels not in (3, 4):
            raise MatteconvError(f"--in-channels must be 3 or 4, got {self.in_channels}")
        if self.hr_channels is not None and self.hr_channels < 2:
            raise MatteconvError(f"--hr-channels must be at least 2 (the fusion head has hr/2), got {self.hr_channels}")
        if any(s % 32 for s in self.size):
            raise MatteconvError(f"--size {self.size[0]}x{self.size[1]}: MODNet needs multiples of 32")
        if self.optimizer not in OPTIMIZERS:
            raise MatteconvError(f"--optimizer {self.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise MatteconvError("--steps and --batch-size must be at least 1")
        if (self.images is None) != (self.alphas is None):
            raise MatteconvError("--images and --alphas go together")
        if sum(bool(v) for v in (self.clips, self.images, self.people)) > 1:
            raise MatteconvError("--clips, --images and --people are different data sources: give one")
        if self.clips and self.in_channels != 4:
            raise MatteconvError("--clips trains the temporal model: add --in-channels 4")
        for name in ("p_blank", "p_affine", "p_light"):
            if not 0 <= getattr(self, name) <= 1:
                raise MatteconvError(f"--{name.replace('_', '-')} must be in [0, 1]")
        for name in ("lr", "lr_step", "lr_gamma", "momentum"):  # NaN compares False: ask for finite first
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "momentum"):
                raise MatteconvError(f"--{name.replace('_', '-')} {value}: must be a finite number above 0")
        h, w = self.size
        if self.batch_size * (h // 32) * (w // 32) < 2:  # BatchNorm at 1/32 in training mode needs 2+ values
            raise MatteconvError(f"--size {h}x{w} with --batch-size {self.batch_size}: BatchNorm in training needs "
                                 "more than one value per channel at 1/32 scale (batch x H/32 x W/32 > 1); "
                                 "raise --batch-size or --size")
        if self.only_previous_alpha and (self.in_channels != 4 or not self.init):
            raise MatteconvError("--only-previous-alpha trains what a widened checkpoint adds: give --init with a "
                                 "3-channel checkpoint and --in-channels 4")
        bad = [m for m in self.freeze if m not in FREEZABLE]
        if bad:
            raise MatteconvError(f"--freeze {bad[0]}: choose from {', '.join(FREEZABLE)}")
        check_device(self.device)


def check_device(device: str) -> None:
    """One line for a --device torch cannot parse or this machine does not have (torch raises an AssertionError
    for CUDA missing, a RuntimeError for a bad name, at the first tensor moved)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise MatteconvError(f"--device {device!r}: not a device; give cpu or cuda[:N]") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise MatteconvError(f"--device {device!r}: training runs on cpu or cuda[:N]")
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise MatteconvError(f"--device {device}: CUDA is not available ({why}); use --device cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MatteconvError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")


@dataclass
class TrainSummary:
    output: str
    state: str
    steps: int
    first_loss: float
    last_loss: float
    images_per_s: float
    wall_s: float
    weights_sha256: str
    processes: int
    losses: list[float] = field(default_factory=list)


class TrainingMODNet(nn.Module):
    """MODNet with its training heads: (semantic at 1/16, detail at full size, matte), as in the official code."""

    def __init__(self, model: MODNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        m = self.model
        lr8x, enc2x, enc4x = m.lr_branch(x)
        semantic = torch.sigmoid(m.lr_branch.conv_lr(lr8x))
        hr2x = m.hr_branch(x, enc2x, enc4x, lr8x)
        detail = upsampled_head(m.hr_branch.conv_hr, hr2x, x, m.training)
        return semantic, detail, m.f_branch(x, lr8x, hr2x)


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.pt")


def build_model(cfg: TrainConfig) -> MODNet:
    torch.manual_seed(cfg.seed)
    if not cfg.init:
        return MODNet(cfg.in_channels, cfg.hr_channels or 32)
    model = load_checkpoint(cfg.init).model
    if cfg.hr_channels is not None and cfg.hr_channels != model.hr_channels:
        raise MatteconvError(f"{cfg.init}: has hr_channels={model.hr_channels} (read from its weights), "
                             f"--hr-channels asks for {cfg.hr_channels}; leave --hr-channels out to follow it")
    if model.in_channels == cfg.in_channels:
        return model
    if cfg.in_channels == 4:
        return widen_to_temporal(model)
    raise MatteconvError(f"{cfg.init}: a {model.in_channels}-channel checkpoint cannot start a 3-channel run")


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm in eval mode: normalised with its running statistics, which stay as they are; its affine
    weight and bias still train. What fine-tuning a trained model needs at small batches, and what an imported
    checkpoint needs always: its backbone BatchNorms are identities carrying folded biases (running_mean 0,
    running_var 1 - eps), which batch statistics would replace by a different function at step 0."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def train_only_previous_alpha(model: MODNet) -> None:
    """Only the input-channel-3 slices of the convolutions that read the input (train/widen.py IMAGE_SLOT) keep
    their gradient; every other weight stays as loaded. A gradient hook zeroes the other slices of those weights:
    Adam and SGD (no weight decay) then leave them bitwise unchanged. With a zero previous alpha the model stays
    exactly the 3-channel one it was widened from."""
    slots = {}
    for name, p in model.named_parameters():
        slot = IMAGE_SLOT.get(name)
        if slot is None or not p.requires_grad:
            p.requires_grad_(False)
            continue
        index = slot if slot >= 0 else p.shape[1] + slot
        mask = torch.zeros_like(p)
        mask[:, index] = 1
        p.register_hook(lambda g, m=mask: g * m)
        slots[name] = index
    if not slots:
        raise MatteconvError("--only-previous-alpha: every convolution that reads the previous alpha is frozen")


def make_source(cfg: TrainConfig):
    if cfg.people:
        return PeopleSource(cfg.seed, cfg.size, cfg.people, cfg.p_blank, cfg.p_affine, cfg.p_light)
    if cfg.clips:
        return ClipSource(Path(cfg.clips), cfg.seed, cfg.size, cfg.p_blank, cfg.p_affine, cfg.p_light,
                          Path(cfg.backgrounds) if cfg.backgrounds else None)
    if cfg.images:
        return FolderSource(Path(cfg.images), Path(cfg.alphas), cfg.seed, cfg.size, cfg.p_light)
    return SyntheticSource(cfg.seed, cfg.size, cfg.in_channels == 4, cfg.p_blank, cfg.p_affine, cfg.p_light)


def make_optimizer(cfg: TrainConfig, params) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The run's optimizer and StepLR. On CPU and CUDA, PyTorch's fused kernel: one pass over all parameters
    (Adam 23 -> 5 ms a step at MODNet's size on 2 threads; SGD's update is bitwise the for-loop one, Adam's within
    fp32 rounding of it)."""
    fused = torch.device(cfg.device).type in ("cpu", "cuda")
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, fused=fused)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, fused=fused)
    period = max(1, int(cfg.lr_step * cfg.steps))
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=period, gamma=cfg.lr_gamma)


def save_weights(model: MODNet, path: Path, dtype: torch.dtype = torch.float32) -> str:
    """Atomically write the checkpoint in the layout `export` loads (official `module.` layout for torch files;
    one copy per tensor for .safetensors); return the weights hash of what was written."""
    sd = official_state_dict(model)
    sd = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            once = {k: v for k, v in sd.items()
                    if not k.startswith("module.lr_branch.backbone.") and not k.endswith("num_batches_tracked")}
            save_file(once, str(tmp), metadata={"format": "pt", "producer": "matteconv train"})
        else:
            torch.save(sd, str(tmp))
    return weights_sha256({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})  # as loaded


def _config_key(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


class _Batches(torch.utils.data.Dataset):
    """Map-style dataset of whole batches: index = step. Each batch is a pure function of (seed, step), so it
    does not matter which process builds it or when."""

    def __init__(self, make: Callable[[int], tuple], steps: int):
        self.make, self.steps = make, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple:
        try:
            return self.make(step), None
        except Exception as e:  # noqa: BLE001 - raised as itself in the training process (DataLoader would
            return None, e      # re-raise it with the worker's traceback folded into the message)


# AF_UNIX socket paths hold at most 107 bytes (Linux sun_path). A DataLoader worker hands each batch's shared
# memory to the main process over a socket that Python 3.11's multiprocessing makes in
# $TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX (about 35 bytes more); with a longer TMPDIR the bind fails in a
# background thread and training waits forever (measured: an 80-byte TMPDIR hung `matteconv train`).
SOCKET_PATH_MAX = 107
MP_SOCKET_SUFFIX = 40


def _socket_safe_tempdir() -> None:
    """In a DataLoader worker: if TMPDIR is too long for the socket multiprocessing makes in it, make that
    socket's folder under the first short writable system folder instead (multiprocessing removes it at exit)."""
    import tempfile

    if len(tempfile.gettempdir()) + MP_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            tempfile.tempdir = folder  # this worker process only: what multiprocessing.util.get_temp_dir uses
            return


def _data_worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # DataLoader already gives each worker one torch thread
    _socket_safe_tempdir()


def batches(make: Callable[[int], tuple], start: int, stop: int, workers: int = 1):
    """Yield batches start..stop-1 in order, built ahead of the step in `workers` DataLoader processes (two
    batches queued per worker). A process, not a thread: the synthetic generator's Python holds the GIL, which
    would stall the training thread's operator dispatch; in a worker it costs one core's share only.
    Workers are spawned, never forked: a fork copies whatever locks other threads hold at that instant (OpenMP,
    onnxruntime and OpenCV thread pools of the calling process), and the child can wait on them forever. Seen
    here: `make test` hung in DataLoader's queue after earlier tests had run onnxruntime in the same process."""
    loader = torch.utils.data.DataLoader(_Batches(make, stop), batch_size=None, sampler=range(start, stop),
                                         num_workers=workers, prefetch_factor=2 if workers else None,
                                         worker_init_fn=_data_worker_init if workers else None,
                                         multiprocessing_context="spawn" if workers else None)
    for batch, err in loader:
        if err is not None:
            raise err
        yield batch


def _make_batch(source, in_channels: int, batch_size: int, positions: range, step: int) -> tuple:
    """(input, ground-truth alpha, its trimap): the trimap (two 9x9 max pools at 256x256) is built here, in the
    DataLoader worker, instead of in the step; max and where are exact, so it is the same.
    Module level (picklable), so DataLoader workers can be started with any multiprocessing method."""
    x, gt = to_batch([source.item(step * batch_size + i) for i in positions], in_channels)
    return x, gt, trimap(gt)


def check_output(output: Path, cfg: TrainConfig) -> None:
    """Before anything trains: a checkpoint suffix the writer knows, writable outputs, no input overwritten."""
    check_checkpoint_name(output)
    for target in (output, state_path(output)):
        check_output_file(target)
    refuse_overwrite([output, state_path(output)], [cfg.init])


def load_state(spath: Path, device: str) -> dict:
    """OUT.state.pt as written by `save`: plain tensors and numbers only (never unpickles code), checked."""
    if not spath.is_file():
        raise MatteconvError(f"{spath}: no training state to resume from (train without --resume first)")
    try:
        state = torch.load(spath, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e).lower()
        if "weights only load failed" in text or "unsupported global" in text:
            raise MatteconvError(f"{spath}: refused: unpickling the training state needs code; only plain tensors "
                                 "are loaded (train without --resume to start again)") from None
        why = str(e).splitlines()[0] if str(e) else "unpickling failed"
        raise MatteconvError(f"{spath}: not a training state ({why})") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many types on damaged files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MatteconvError(f"{spath}: not a readable training state, truncated or corrupt ({msg})") from None
    missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["config"], dict):
        raise MatteconvError(f"{spath}: not a training state written by `matteconv train` "
                             f"(missing {', '.join(missing) or 'config'})")
    return state


def finite_weights(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in [*model.parameters(), *model.buffers()]
               if t.is_floating_point())


@contextlib.contextmanager
def torch_cache_in_scratch():
    """The optimizers' step imports torch._dynamo, whose import makes $TMPDIR/torchinductor_<user> (an empty
    compile cache). Within the block, that import points it into a temporary folder removed afterwards, so a run
    leaves nothing in $TMPDIR. No effect when torch._dynamo is already imported or the cache dir is chosen."""
    if "torch._dynamo" in sys.modules or "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="matteconv-torch-") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp
        try:
            yield
        finally:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)


def train(cfg: TrainConfig, output: str | Path, resume: bool = False, save_every: int = 0,
          save_dtype: torch.dtype = torch.float32, threads: int | None = None,
          on_step: Callable[[int, int, float, float], None] | None = None) -> TrainSummary:
    """Train and write OUT (weights) plus OUT.state.pt (optimizer, schedule, step) atomically."""
    cfg.check()
    output = Path(output)
    check_output(output, cfg)
    if threads:
        torch.set_num_threads(threads)
    import cv2

    cv2.setNumThreads(1)  # the data worker must not compete with torch's threads for the cores
    world = distributed.setup(cfg.device)
    try:
        # each step reuses the pages of the last one's tensors (heap.py: 15% per step)
        with keep_freed_memory(), torch_cache_in_scratch():
            return _train(cfg, output, resume, save_every, save_dtype, world, on_step)
    finally:
        distributed.teardown(world)


def _train(cfg, output, resume, save_every, save_dtype, world, on_step) -> TrainSummary:
    if cfg.batch_size % world.size:
        raise MatteconvError(f"--batch-size {cfg.batch_size} does not split over {world.size} processes")
    source = make_source(cfg)  # checks user data before anything trains
    model = build_model(cfg).to(cfg.device).train()
    if cfg.freeze_norm:
        freeze_batchnorm(model)
    for name in cfg.freeze:
        model.get_submodule(name).requires_grad_(False)
    if cfg.only_previous_alpha:
        train_only_previous_alpha(model)
    if world.size > 1:
        distributed.use_global_batchnorm(model)
    net = TrainingMODNet(model)
    if world.size > 1:
        net = nn.parallel.DistributedDataParallel(net)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise MatteconvError("--freeze leaves nothing to train")
    opt, sched = make_optimizer(cfg, trainable)
    start, losses = 0, []
    spath = state_path(output)
    if resume:
        state = load_state(spath, cfg.device)
        if state["config"] != _config_key(cfg):
            diff = [k for k in state["config"] if state["config"][k] != _config_key(cfg).get(k)]
            raise MatteconvError(f"{spath}: --resume needs the same settings; these differ: {', '.join(diff)}")
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, losses = int(state["step"]), [float(v) for v in state["losses"]]
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MatteconvError(f"{spath}: damaged training state ({msg})") from None

    def save(step: int) -> str:
        if not finite_weights(model):  # e.g. a huge --lr: the loss was still finite, the weights after the step not
            raise MatteconvError(f"{output}: not written: the weights became non-finite (inf/NaN) by step {step}; "
                                 "lower --lr")
        if not world.main:
            return ""
        sha = save_weights(model, output, save_dtype)
        with atomic_path(spath) as tmp:
            torch.save({"config": _config_key(cfg), "step": step, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "losses": losses}, str(tmp))
        return sha

    make = partial(_make_batch, source, cfg.in_channels, cfg.batch_size, world.share(cfg.batch_size))
    t0 = time.perf_counter()
    for step, (x, gt, tri) in zip(range(start, cfg.steps), batches(make, start, cfg.steps)):
        x, gt, tri = x.to(cfg.device), gt.to(cfg.device), tri.to(cfg.device)
        semantic, detail, matte = net(x)
        loss = modnet_losses(semantic, detail, matte, x[:, :3], gt, tri).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(distributed.mean_over_world(loss, world))
        if not torch.isfinite(torch.tensor(losses[-1])):
            raise MatteconvError(f"training diverged at step {step + 1} (loss {losses[-1]}): lower --lr")
        rate = (step + 1 - start) * cfg.batch_size / (time.perf_counter() - t0)
        if save_every and (step + 1) % save_every == 0 and step + 1 < cfg.steps:
            save(step + 1)
        if on_step and world.main:
            on_step(step + 1, cfg.steps, losses[-1], rate)
    wall = time.perf_counter() - t0
    sha = save(cfg.steps)
    done = cfg.steps - start
    return TrainSummary(str(output), str(spath), cfg.steps, losses[0] if losses else float("nan"),
                        losses[-1] if losses else float("nan"), done * cfg.batch_size / wall if done else 0.0,
                        wall, sha, world.size, losses)
