"""Frame sources and sinks for `matte`: a single image, a folder of images, or a video file.

Sources yield RGB uint8 frames and say what they had to change on the way (an alpha channel dropped, 16-bit
scaled to 8-bit). Sinks never leave a partial result: a video or image is written to a temporary file beside the
target and renamed on `commit()`; a folder is filled as a temporary folder beside the target and renamed.
Video is read with OpenCV's VideoCapture and written with VideoWriter: `.mp4` as mp4v, `.avi` as MJPG (the
codecs opencv-python-headless can encode without extra libraries; H.264 is not available in it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import MatteconvError
from .fileio import atomic_path, check_output_folder, encode_image, publish, temp_path_beside
from .preprocess import to_rgb
from .verify.golden import IMAGE_SUFFIXES

# A damaged user file is reported once, by us, in one line: keep OpenCV's and FFmpeg's own messages ("[ WARN:0]
# ... PNG input buffer is incomplete", "[mov,mp4,...] moov atom not found") off stderr. FFmpeg's level is read
# when OpenCV first opens a video (AV_LOG_QUIET); either can be turned back on from the environment.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
DEFAULT_FPS = 25.0


def kind_of(path: Path) -> str:
    """'folder', 'image' or 'video' by what the path is (folders) or its suffix (files)."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "unknown"


# ---------------------------------------------------------------- reading


def decode_image(path: Path, notes: set[str] | None = None) -> np.ndarray:
    """Read an image file as RGB uint8. An alpha channel is dropped and 16-bit is scaled to 8-bit (noted)."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise MatteconvError(f"{path}: not a readable image")
    if notes is not None:
        if img.dtype == np.uint16:
            notes.add("16-bit input scaled to 8-bit")
        elif img.dtype != np.uint8:
            notes.add(f"{img.dtype} input converted to 8-bit")
        if img.ndim == 3 and img.shape[2] == 4:
            notes.add("input alpha channel ignored (the matte comes from the model)")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_rgb(img)


@dataclass
class Source:
    """Frames from an image, a folder of images or a video. `names` are per-frame output names for folders."""

    path: Path
    kind: str
    fps: float = DEFAULT_FPS
    count: int | None = None  # frames (exact for images, the container's estimate for video)
    size: tuple[int, int] | None = None  # (H, W) of the first frame
    names: list[str] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)
    _files: list[Path] = field(default_factory=list, repr=False)
    _first: np.ndarray | None = field(default=None, repr=False)

    def frames(self) -> Iterator[np.ndarray]:
        if self.kind == "video":
            yield from self._video_frames()
            return
        for i, f in enumerate(self._files):
            if i == 0 and self._first is not None:
                img, self._first = self._first, None
            else:
                img = decode_image(f, self.notes)
            yield img

    def _video_frames(self) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                if bgr.dtype != np.uint8:
                    self.notes.add(f"{bgr.dtype} video scaled to 8-bit")
                if bgr.ndim == 3 and bgr.shape[2] == 4:
                    bgr = bgr[:, :, :3]
                yield to_rgb(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else bgr)
        finally:
            cap.release()


def open_source(path: str | Path) -> Source:
    """Probe the input: it exists, is a known kind, and its first frame decodes (an empty video is an error)."""
    path = Path(path)
    if not path.exists():
        raise MatteconvError(f"{path}: input not found")
    kind = kind_of(path)
    if kind == "unknown":
        raise MatteconvError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}), video "
                             f"({', '.join(VIDEO_SUFFIXES)}) or folder of images")
    if kind == "folder":
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MatteconvError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        stems = [f.stem for f in files]
        if len(set(stems)) != len(stems):
            dup = next(s for s in stems if stems.count(s) > 1)
            raise MatteconvError(f"{path}: two images share the name {dup!r} (outputs are written as NAME.png)")
        src = Source(path, kind, count=len(files), names=stems, _files=files)
        src._first = decode_image(files[0], src.notes)
        src.size = src._first.shape[:2]
        return src
    if kind == "image":
        src = Source(path, kind, count=1, names=[path.stem], _files=[path])
        src._first = decode_image(path, src.notes)
        src.size = src._first.shape[:2]
        return src
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MatteconvError(f"{path}: OpenCV cannot open this video (unreadable, corrupt or unsupported codec)")
        ok, first = cap.read()
        if not ok or first is None:
            raise MatteconvError(f"{path}: video has no decodable frames (empty or corrupt)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    src = Source(path, kind, fps=float(fps) if fps and 0 < fps < 1000 else DEFAULT_FPS,
                 count=count if count > 0 else None, size=first.shape[:2])
    if not (fps and 0 < fps < 1000):
        src.notes.add(f"video has no frame rate; writing {DEFAULT_FPS:g} fps")
    return src


# ---------------------------------------------------------------- writing


class Sink:
    """Write frames; `commit()` makes them appear at `target` all at once; `abort()` removes everything."""

    target: Path

    def write(self, image: np.ndarray, name: str | None = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def commit(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ImageSink(Sink):
    """One image file (the suffix picks the format), written atomically on commit."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        check_output_folder(self.target)
        if self.target.suffix.lower() not in IMAGE_SUFFIXES:
            raise MatteconvError(f"{self.target}: not an image file name ({', '.join(IMAGE_SUFFIXES)})")
        self._data: bytes | None = None

    def write(self, image, name=None):
        self._data = encode_image(image, self.target.suffix.lower(), self.target)

    def commit(self):
        if self._data is None:
            raise MatteconvError(f"{self.target}: nothing to write")
        with atomic_path(self.target) as tmp:
            tmp.write_bytes(self._data)

    def abort(self):
        self._data = None


class FolderSink(Sink):
    """A folder of NAME.png (or another image suffix): filled as a hidden temporary folder, renamed on commit.
    The target must not exist or be an empty folder."""

    def __init__(self, target: str | Path, suffix: str = ".png"):
        self.target = Path(target)
        check_output_folder(self.target)
        if self.target.exists() and (not self.target.is_dir() or any(self.target.iterdir())):
            raise MatteconvError(f"{self.target}: output exists and is not an empty folder (remove it or pick another)")
        self.suffix = suffix
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent))
        self.n = 0

    def write(self, image, name=None):
        name = name or f"frame_{self.n:06d}"
        (self.tmp / f"{name}{self.suffix}").write_bytes(encode_image(image, self.suffix, self.target))
        self.n += 1

    def commit(self):
        if self.target.exists():
            self.target.rmdir()  # empty (checked at open)
        publish(self.tmp, self.target)

    def abort(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class VideoSink(Sink):
    """A video file: `.mp4` (mp4v) or `.avi` (MJPG), RGB frames of one size, written to a temporary file with
    the same suffix (the container follows the suffix) and renamed on commit."""

    def __init__(self, target: str | Path, fps: float):
        self.target = Path(target)
        check_output_folder(self.target)
        suffix = self.target.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise MatteconvError(f"{self.target}: video output must be "
                                 f"{' or '.join(f'{s} ({c})' for s, c in VIDEO_CODECS.items())}")
        self.fps = fps
        self.codec = VIDEO_CODECS[suffix]
        self.tmp = temp_path_beside(self.target, suffix=f".tmp{suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.n = 0

    def write(self, image, name=None):
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        h, w = img.shape[:2]
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.codec), self.fps, (w, h))
            if not self.writer.isOpened():
                raise MatteconvError(f"{self.target}: OpenCV cannot write {self.codec} video here")
            self.size = (h, w)
        elif (h, w) != self.size:
            raise MatteconvError(f"{self.target}: frame {self.n} is {w}x{h}, the video is {self.size[1]}x{self.size[0]}")
        self.writer.write(np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)))
        self.n += 1

    def commit(self):
        if self.writer is None:
            raise MatteconvError(f"{self.target}: no frames to write")
        self.writer.release()
        self.writer = None
        publish(self.tmp, self.target)

    def abort(self):
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp.exists():
            self.tmp.unlink()


def open_sink(target: str | Path, source_kind: str, fps: float = DEFAULT_FPS, rgba: bool = False) -> Sink:
    """The sink for an output path: a video suffix -> VideoSink, an image suffix -> ImageSink (only for a single
    image input), anything else -> FolderSink of PNGs (folder or video input)."""
    target = Path(target)
    suffix = target.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if source_kind != "video":
            raise MatteconvError(f"{target}: video output needs a video input (got {source_kind})")
        return VideoSink(target, fps)
    if suffix in IMAGE_SUFFIXES:
        if source_kind != "image":
            raise MatteconvError(f"{target}: a {source_kind} input needs a folder (or video) output, not an image file")
        if rgba and suffix not in (".png", ".webp", ".tif", ".tiff"):
            raise MatteconvError(f"{target}: --background none writes RGBA: use .png")
        return ImageSink(target)
    if source_kind == "image":
        raise MatteconvError(f"{target}: output for an image must be an image file ({', '.join(IMAGE_SUFFIXES)})")
    return FolderSink(target)


def write_test_video(path: str | Path, frames: list[np.ndarray], fps: float = DEFAULT_FPS) -> Path:
    """Encode RGB frames as a video (used by tests and the benchmark)."""
    sink = VideoSink(path, fps)
    try:
        for f in frames:
            sink.write(f)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return Path(path)


def count_frames(path: str | Path) -> tuple[int, tuple[int, int] | None, float]:
    """Decode a video to the end: (frames, (H, W), fps)."""
    cap = cv2.VideoCapture(str(path))
    n, size = 0, None
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        while True:
            ok, f = cap.read()
            if not ok:
                break
            n += 1
            size = f.shape[:2]
    finally:
        cap.release()
    return n, size, fps
