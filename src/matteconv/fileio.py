"""Atomic output: write to a temporary file beside the target, then rename, so no partial file is ever left.
Temporary files are private (mode 0600); what is published gets the mode a plain `open()` would have given."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import MatteconvError


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (matte writes from several threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_folder(target: str | os.PathLike) -> None:
    """One line naming the output when its folder is missing, instead of a traceback later."""
    parent = Path(target).parent
    if not parent.exists():
        raise MatteconvError(f"{target}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise MatteconvError(f"{target}: {parent} is not a folder")


def temp_path_beside(target: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """An empty private temporary file in the target's folder (same file system, so the rename is atomic)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Give a finished temporary file or folder the usual permissions and rename it onto `target`."""
    tmp = Path(tmp)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` only if the block succeeds."""
    check_output_folder(target)
    tmp_path = temp_path_beside(target)
    try:
        yield tmp_path
        publish(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike) -> Iterator[list[Path]]:
    """Several outputs that land together or not at all (for example prototxt + caffemodel)."""
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(t)) for t in targets]
        yield tmps


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def encode_image(image, suffix: str, where: str | os.PathLike, params: tuple[int, ...] = ()) -> bytes:
    """RGB, RGBA or gray (8 or 16 bit) encoded in the format the suffix names (`params`: OpenCV's flags)."""
    import cv2
    import numpy as np

    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(suffix or ".png", img, list(params))
    if not ok:
        raise MatteconvError(f"{where}: cannot encode an image as {suffix or '(no suffix)'}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image) -> None:
    """Encode by the target's suffix and write atomically."""
    data = encode_image(image, Path(path).suffix, path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
