"""Matte images, image folders and videos with any converted model, through the one Backend interface.

    frames -> prepare (policy, model size) -> Backend.run -> restore to frame size -> composite -> encode

Three threads keep the model busy: a reader (decode + prepare + scene-cut check), the main thread (only the
model call, which in onnxruntime and torch releases the GIL) and a writer (restore + composite + encode +
flicker statistics), joined by small bounded queues so memory stays flat on long videos.

Temporal (4-channel) models get the previous frame's alpha at model size as channel 3; zeros for the first frame,
after a scene cut (mean |frame difference| at model size above CUT_THRESHOLD levels), when the previous alpha is
empty (max < EMPTY_ALPHA) or when `temporal=False`.

Flicker is the mean |alpha_t - alpha_t-1| over static pixels (every input channel changed by < STATIC_LEVELS
between the two frames), over all consecutive frame pairs of one size that are not scene cuts.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import preprocess
from .numeric import require_finite
from .errors import MatteconvError
from .fileio import refuse_overwrite
from .video import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Sink,
    Source,
    decode_image,
    open_sink,
    open_source,
)

CUT_THRESHOLD = 30.0  # mean |frame_t - frame_t-1| in levels (0..255) at model size that counts as a scene cut
EMPTY_ALPHA = 0.05  # a previous alpha whose max is below this is no help: feed zeros
STATIC_LEVELS = 2  # a pixel is static when every channel changed by fewer levels than this
QUEUE_DEPTH = 4
# Peak memory of one inference grows with the model input's pixels. Measured (reference checkpoint, torch, 2
# threads, peak RSS over the loaded model): 750 B/pixel at 512, 610 at 1024, 550 at 2048. Like `export`
# (export/memory.py), a size that cannot fit is refused before the model runs, instead of an allocator traceback.
MATTE_BASE_BYTES = 0.35e9
MATTE_BYTES_PER_PIXEL = 800.0
DEFAULT_BACKGROUND = "#FFFFFF"
COLOR_NAMES = {"white": "#FFFFFF", "black": "#000000", "green": "#00FF00", "blue": "#0000FF"}

BACKGROUND_HELP = (
    "What goes behind the person: an image FILE (scaled to cover the frame), a colour #RRGGBB (or white, black, "
    "green, blue), 'blur' (the frame itself, blurred) or 'none': images and folders are written as RGBA PNG "
    "(alpha = the matte, colour untouched); a video file cannot carry alpha, so 'none' composites over black "
    "there (use --alpha-out for the matte, or a folder OUTPUT for RGBA PNG frames).")


# ---------------------------------------------------------------- background and compositing


@dataclass
class Background:
    kind: str  # color | image | blur | none
    color: tuple[int, int, int] = (0, 0, 0)
    image: np.ndarray | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def for_frame(self, frame: np.ndarray) -> np.ndarray:
        """The background for this frame: HxWx3 uint8 (cached per frame size except for blur)."""
        h, w = frame.shape[:2]
        if self.kind == "blur":
            return blur_background(frame)
        key = (h, w)
        if key not in self._cache:
            if self.kind == "image":
                x, y, cw, ch = preprocess.centre_crop_box(*self.image.shape[:2], h, w)
                crop = np.ascontiguousarray(self.image[y : y + ch, x : x + cw])
                interp = cv2.INTER_AREA if ch >= h else cv2.INTER_LINEAR
                bg = cv2.resize(crop, (w, h), interpolation=interp)
            else:  # color; none (over black, for outputs that cannot carry alpha)
                bg = np.empty((h, w, 3), np.uint8)
                bg[:] = self.color if self.kind == "color" else (0, 0, 0)
            self._cache = {key: bg}
        return self._cache[key]


def parse_background(text: str | None) -> Background:
    text = (text or DEFAULT_BACKGROUND).strip()
    low = text.lower()
    if low in ("none", "blur"):
        return Background(low)
    low = COLOR_NAMES.get(low, low)
    if low.startswith("#"):
        hexa = low[1:]
        if len(hexa) == 3:
            hexa = "".join(c * 2 for c in hexa)
        try:
            if len(hexa) != 6:
                raise ValueError
            rgb = tuple(int(hexa[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            raise MatteconvError(f"--background {text}: not a colour (use #RRGGBB)") from None
        return Background("color", rgb)
    path = Path(text)
    if path.is_dir():
        raise MatteconvError(f"--background {text}: is a folder (give an image file, #RRGGBB, blur or none)")
    if not path.is_file():
        raise MatteconvError(f"--background {text}: no such file (and not #RRGGBB, blur or none)")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise MatteconvError(f"--background {text}: not an image ({', '.join(IMAGE_SUFFIXES)})")
    return Background("image", image=decode_image(path))


def blur_background(frame: np.ndarray) -> np.ndarray:
    """A strong blur that costs little: blur a quarter-size copy and scale it back."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    sigma = max(1.0, min(small.shape[:2]) / 40)
    small = cv2.GaussianBlur(small, (0, 0), sigma)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def composite(frame: np.ndarray, alpha: np.ndarray, bg: Background, rgba: bool = False) -> np.ndarray:
    """frame (HxWx3 uint8) over the background with alpha (HxW in [0, 1]) -> uint8; RGBA when rgba is set
    (background 'none' for image outputs)."""
    if rgba:
        a8 = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
        return np.dstack([frame, a8])
    a = np.ascontiguousarray(alpha, np.float32)
    # a * frame + (1 - a) * background, in one fast OpenCV pass (within 1 level of the float formula)
    return cv2.blendLinear(np.ascontiguousarray(frame), bg.for_frame(frame), a, 1.0 - a)


def alpha_image(alpha: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if right.ndim == 3 and right.shape[2] == 4 and left.shape[2] == 3:
        left = np.dstack([left, np.full(left.shape[:2], 255, np.uint8)])
    return np.concatenate([left, right], axis=1)


# ---------------------------------------------------------------- summary


@dataclass
class MatteSummary:
    input: str
    output: str
    alpha_out: str | None
    kind: str
    model: str
    backend: str
    in_channels: int
    policy: str
    model_size: list[int] | None  # fixed (H, W) the frames were prepared at; None when it follows each frame
    frame_size: list[int] | None  # (H, W) of the first frame
    background: str
    frames: int = 0
    temporal: bool | None = None  # None for 3-channel models
    scene_cuts: int = 0
    resets: int = 0  # frames fed zeros as previous alpha (first, cuts, empty previous alpha, size change)
    flicker: float | None = None
    static_fraction: float | None = None
    model_seconds: float = 0.0
    total_seconds: float = 0.0
    model_fps: float = 0.0
    e2e_fps: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("model_seconds", "total_seconds", "model_fps", "e2e_fps"):
            d[k] = round(d[k], 3)
        if d["flicker"] is not None:
            d["flicker"] = float(f"{d['flicker']:.6g}")
            d["static_fraction"] = round(d["static_fraction"], 4)
        return d


@dataclass
class _Item:
    index: int
    name: str
    rgb: np.ndarray
    prep: preprocess.Prepared
    cut: bool


class _Stopped(Exception):
    pass


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


_END = object()


# ---------------------------------------------------------------- the pipeline


def check_memory(hw: tuple[int, int]) -> None:
    """Refuse a model input size whose inference cannot fit in the available memory (export/memory.py's check,
    with inference's own per-pixel cost)."""
    from .export.memory import require_memory

    require_memory(hw, MATTE_BASE_BYTES, MATTE_BYTES_PER_PIXEL, "the model needs",
                   "use a smaller --size (512 is typical)")


def resolve_geometry(backend, frame_hw: tuple[int, int], size: str | tuple | None, policy: str | None,
                     notes: list[str]) -> tuple[str, tuple[int, int] | None]:
    """(policy, fixed model size or None = per frame) for this backend; explains what happens to the frames."""
    requested = preprocess.parse_size(size) if size is not None else None
    if backend.size is not None:
        model_size = tuple(int(v) for v in backend.size)
        if requested is not None and requested != model_size:
            notes.append(f"--size {requested[0]}x{requested[1]} ignored: the model takes {model_size[0]}x{model_size[1]}")
        policy = policy or preprocess.auto_policy(frame_hw, model_size)
    else:
        model_size = requested
        policy = policy or "official"
    if policy not in preprocess.POLICIES:
        raise MatteconvError(f"--policy {policy}: unknown (choose from {', '.join(preprocess.POLICIES)})")
    if model_size is not None:
        check_memory(model_size)
    h, w = frame_hw
    mh, mw = model_size or preprocess.official_size(h, w)
    if (mh, mw) != (h, w):
        if policy == "device":
            _, _, cw, ch = preprocess.centre_crop_box(h, w, mh, mw)
            how = "resized" if (cw, ch) == (w, h) else f"centre-cropped to {cw}x{ch} (matte 0 outside) and resized"
        elif policy == "letterbox":
            _, _, nw, nh = preprocess.letterbox_box(h, w, mh, mw)
            how = (f"fitted whole into {nw}x{nh} with grey {preprocess.PAD_VALUE} bands" if (nw, nh) != (mw, mh)
                   else "resized")
        else:
            how = "area-resized" + (" (aspect changed)" if abs(mw / mh - w / h) > 0.02 else "")
        notes.append(f"frames {w}x{h} {how} to the model's {mw}x{mh} ({policy} policy); the matte is scaled back")
    return policy, model_size


def matte(input: str | Path, model: str | Path | None, output: str | Path, *, background: str | None = None,
          size: str | tuple | None = None, policy: str | None = None, mirror: bool = False,
          alpha_out: str | Path | None = None, side_by_side_out: bool = False, temporal: bool = True,
          backend=None, on_start: Callable[[int | None], None] | None = None,
          on_frame: Callable[[], None] | None = None, threads: int = 2) -> MatteSummary:
    """Matte INPUT (image, folder or video) with MODEL into OUTPUT; see the module docstring.
    Pass `backend` to reuse an opened model (then `model` is only a label)."""
    source = open_source(input)
    user_files = [input, model, background if background and Path(background).is_file() else None]
    if model is not None and Path(model).suffix.lower() == ".prototxt":
        user_files.append(Path(model).with_suffix(".caffemodel"))
    refuse_overwrite([output, alpha_out], user_files)
    bg = parse_background(background)
    if backend is None:
        from .backends import open_backend

        if model is None:
            raise MatteconvError("no model given (--model)")
        backend = open_backend(model, threads)
    if backend.in_channels not in (3, 4):
        raise MatteconvError(f"{model}: model takes {backend.in_channels} input channels (MODNet takes 3, or 4 "
                             "with the previous alpha)")
    notes: list[str] = []
    policy, model_size = resolve_geometry(backend, source.size, size, policy, notes)
    is_video_out = Path(output).suffix.lower() in VIDEO_SUFFIXES
    rgba = bg.kind == "none" and not is_video_out
    if bg.kind == "none" and is_video_out:
        notes.append("--background none: a video has no alpha channel, composited over black")
    summary = MatteSummary(str(input), str(output), str(alpha_out) if alpha_out else None, source.kind,
                           str(model), backend.name, backend.in_channels, policy,
                           list(model_size) if model_size else None, list(source.size), background or DEFAULT_BACKGROUND,
                           temporal=(temporal if backend.in_channels == 4 else None), notes=notes)

    sinks: list[Sink] = []
    try:
        sinks.append(open_sink(output, source.kind, source.fps, rgba=rgba))
        if alpha_out is not None:
            sinks.append(open_sink(alpha_out, source.kind, source.fps))
        _run(source, backend, sinks, bg, rgba, policy, model_size, mirror, side_by_side_out, temporal, summary,
             on_start, on_frame)
        for s in sinks:
            s.commit()
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    notes.extend(sorted(source.notes))
    return summary


def _run(source: Source, backend, sinks: list[Sink], bg: Background, rgba: bool, policy: str,
         model_size, mirror: bool, sbs: bool, temporal: bool, summary: MatteSummary, on_start, on_frame) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    in_q: queue.Queue = queue.Queue(QUEUE_DEPTH)
    out_q: queue.Queue = queue.Queue(QUEUE_DEPTH)
    names = source.names
    flicker = {"sum": 0.0, "static": 0, "pixels": 0}

    def reader():
        try:
            prev_frame = None
            for i, rgb in enumerate(source.frames()):
                h, w = rgb.shape[:2]
                msize = model_size or preprocess.official_size(h, w)
                prep = preprocess.prepare(rgb, policy, msize, mirror)
                cut = False
                if prev_frame is not None and prev_frame.shape == prep.frame.shape:
                    diff = cv2.absdiff(prev_frame, prep.frame) if prep.frame.dtype == np.uint8 else \
                        np.abs(prev_frame - prep.frame)
                    cut = float(np.mean(diff)) > CUT_THRESHOLD
                prev_frame = prep.frame
                _put(in_q, _Item(i, names[i] if i < len(names) else f"frame_{i:06d}", rgb, prep, cut), stop)
            _put(in_q, _END, stop)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            stop.set()

    def writer():
        try:
            prev_rgb = prev_alpha = None
            while True:
                got = _get(out_q, stop)
                if got is _END:
                    return
                item, a_model = got
                alpha = preprocess.restore(a_model, item.prep)
                result = composite(item.rgb, alpha, bg, rgba)
                if sbs:
                    result = side_by_side(item.rgb, result)
                sinks[0].write(result, item.name)
                if len(sinks) > 1:
                    sinks[1].write(alpha_image(alpha), item.name)
                if prev_rgb is not None and prev_rgb.shape == item.rgb.shape and not item.cut:
                    lim = (STATIC_LEVELS - 1,) * 3
                    static = cv2.inRange(cv2.absdiff(item.rgb, prev_rgb), (0, 0, 0), lim)  # all channels < 2
                    n = cv2.countNonZero(static)
                    if n:
                        flicker["sum"] += cv2.mean(cv2.absdiff(alpha, prev_alpha), mask=static)[0] * n
                    flicker["static"] += n
                    flicker["pixels"] += static.size
                prev_rgb, prev_alpha = item.rgb, alpha
                if on_frame:
                    on_frame()
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    if on_start:
        on_start(source.count)
    t_start = time.perf_counter()
    rt = threading.Thread(target=reader, name="matte-reader", daemon=True)
    wt = threading.Thread(target=writer, name="matte-writer", daemon=True)
    rt.start()
    wt.start()
    four = summary.in_channels == 4
    prev = None
    model_s = 0.0
    n = 0
    try:
        while True:
            item = _get(in_q, stop)
            if item is _END:
                break
            x = item.prep.tensor
            if four:
                summary.scene_cuts += int(item.cut)
                hw = x.shape[2:]
                if not temporal or prev is None or item.cut or prev.shape != hw or float(prev.max()) < EMPTY_ALPHA:
                    feed = np.zeros(hw, np.float32)
                    summary.resets += 1
                else:
                    feed = prev
                x = np.concatenate([x, feed[None, None]], axis=1)
            t0 = time.perf_counter()
            try:
                a = backend.run(x)
            except MatteconvError:
                raise
            except Exception as e:  # noqa: BLE001 - a runtime's own exception: one line, which frame
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise MatteconvError(f"{summary.model}: {backend.name} failed on frame {item.index}: {msg}") from None
            model_s += time.perf_counter() - t0
            a = np.asarray(a, np.float32)
            if a.size != x.shape[2] * x.shape[3]:
                raise MatteconvError(f"{summary.model}: output of shape {a.shape} on frame {item.index} is not a "
                                     f"1x1x{x.shape[2]}x{x.shape[3]} matte: not a MODNet model")
            require_finite(a, summary.model, f"model output on frame {item.index} ({item.name})")
            a = a.reshape(x.shape[2:])
            prev = a
            n += 1
            _put(out_q, (item, a), stop)
        _put(out_q, _END, stop)
        wt.join()
        rt.join()
    except _Stopped:
        pass
    except BaseException:
        stop.set()
        wt.join()
        rt.join()
        raise
    finally:
        stop_needed = bool(errors)
        if stop_needed:
            stop.set()
            wt.join()
            rt.join()
    if errors:
        raise errors[0]
    total = time.perf_counter() - t_start
    summary.frames = n
    summary.model_seconds = model_s
    summary.total_seconds = total
    summary.model_fps = n / model_s if model_s > 0 else 0.0
    summary.e2e_fps = n / total if total > 0 else 0.0
    if flicker["pixels"]:
        summary.static_fraction = flicker["static"] / flicker["pixels"]
        summary.flicker = flicker["sum"] / flicker["static"] if flicker["static"] else 0.0
