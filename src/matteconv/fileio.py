"""Atomic output: write to a temporary file beside the target, then rename, so no partial file is ever left."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    if not target.parent.exists():
        from .errors import MatteconvError

        raise MatteconvError(f"{target}: output folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
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


def write_image(path: str | os.PathLike, image) -> None:
    """Encode by the target's suffix (RGB or gray, 8 or 16 bit) and write atomically."""
    import cv2
    import numpy as np

    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(Path(path).suffix or ".png", img)
    if not ok:
        from .errors import MatteconvError

        raise MatteconvError(f"{path}: cannot encode an image with this file extension")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
