"""Atomic output: write to a temporary file beside the target, then rename, so no partial file is ever left.
Temporary files are private (mode 0600); what is published gets the mode a plain `open()` would have given.
Also the checks every command makes before its work: the output folder is writable, no output is an input
(whatever the path spelling: relative, ./, symlink, hard link), reports are valid JSON (no bare NaN)."""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

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
    """One line naming the output when its folder is missing or not writable, instead of a traceback later.
    Writability is probed by creating a file (os.access says yes to root on a read-only file system)."""
    parent = Path(target).parent
    if not parent.exists():
        raise MatteconvError(f"{target}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise MatteconvError(f"{target}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".matteconv-probe.", dir=parent)
    except OSError as e:
        raise MatteconvError(f"{target}: cannot write in {parent} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)


def require_folder(folder: str | os.PathLike) -> Path:
    """An input folder (--images, --alphas, --clips...): MatteconvError in one line if it is missing or a file."""
    folder = Path(folder)
    if not folder.exists():
        raise MatteconvError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise MatteconvError(f"{folder}: not a folder")
    return folder


def check_output_file(target: str | os.PathLike) -> None:
    """An output file can be written at `target`: its folder exists and is writable, and it is not a folder."""
    check_output_folder(target)
    if Path(target).is_dir():
        raise MatteconvError(f"{target}: is a folder; give a file name for the output")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same path once resolved (relative, ./, symlinks), or the same
    device and inode (hard links)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_overwrite(outputs: Iterable, inputs: Iterable) -> None:
    """One line if an output would replace one of the command's inputs, or another output (None entries skipped)."""
    outputs = [Path(o) for o in outputs if o is not None]
    inputs = [Path(i) for i in inputs if i is not None]
    for k, out in enumerate(outputs):
        for inp in inputs:
            if same_file(out, inp):
                raise MatteconvError(f"{out}: output would overwrite the input {inp}; choose another output name")
        for other in outputs[k + 1:]:
            if same_file(out, other):
                raise MatteconvError(f"{out}: the same file is given for two outputs ({other})")


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
def _named_for_user(pairs: list[tuple[Path, Path]]) -> Iterator[None]:
    """Errors raised while writing temporaries name the user's files, never the temporary names."""
    try:
        yield
    except MatteconvError as e:
        msg = str(e)
        for tmp, target in pairs:
            msg = msg.replace(str(tmp), str(target))
        if msg == str(e):
            raise
        raise MatteconvError(msg) from None
    except OSError as e:
        where = next((t for tmp, t in pairs if e.filename and str(tmp) == str(e.filename)), None)
        if where is None:
            raise
        raise MatteconvError(f"{where}: cannot write ({e.strerror or e})") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` only if the block succeeds."""
    with atomic_paths(target) as (tmp,):
        yield tmp


def remove_path(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def publish_together(pairs: list[tuple[Path, Path]]) -> None:
    """Rename finished temporaries onto their targets as one step: if a rename fails (or the process is
    interrupted), the targets already renamed get back what they held before (kept as hard links meanwhile)."""
    backups: dict[Path, Path | None] = {}
    done: list[Path] = []
    try:
        for _, target in pairs:
            backups[target] = None
            if target.is_file():
                backup = temp_path_beside(target, ".bak")
                backup.unlink()
                try:
                    os.link(target, backup)
                    backups[target] = backup
                except OSError:  # no hard links here: a failure then leaves that target removed, never half-written
                    pass
        for tmp, target in pairs:
            publish(tmp, target)
            done.append(target)
    except BaseException:
        for target in done:
            if backups[target] is not None:
                os.replace(backups[target], target)
            else:
                remove_path(target)
        raise
    finally:
        for backup in backups.values():
            if backup is not None:
                remove_path(backup)


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike) -> Iterator[list[Path]]:
    """Several outputs that land together or not at all (for example prototxt + caffemodel)."""
    targets = [Path(t) for t in targets]
    for t in targets:
        check_output_file(t)
    tmps: list[Path] = []
    try:
        for t in targets:
            tmps.append(temp_path_beside(t))
        with _named_for_user(list(zip(tmps, targets))):
            yield tmps
            publish_together(list(zip(tmps, targets)))
    finally:
        for tmp in tmps:
            remove_path(tmp)


def replace_folder(tmp: Path, target: Path) -> None:
    """Put a finished temporary folder in place of `target` (which may exist): the old one is moved aside first
    and removed only once the new one is in place, or put back if that fails."""
    if not target.exists():
        publish(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.replace(target, old)
    try:
        publish(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    remove_path(old)


def scratch_dir(prefix: str = "matteconv-") -> Path:
    """A private temporary folder removed when the process exits (normally, on an error, on Ctrl-C or SIGTERM
    once those are raised as exceptions: see proc.stop_signals_raise)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def json_safe(o):
    """JSON-safe: tuples to lists, numpy scalars to Python, NaN/inf to None (JSON has no NaN), paths to str."""
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if hasattr(o, "item") and getattr(o, "ndim", None) == 0:  # numpy scalar
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, os.PathLike):
        return str(o)
    return o


def json_text(o, **kw) -> str:
    """json.dumps that can only write valid JSON: non-finite numbers become null."""
    return json.dumps(json_safe(o), allow_nan=False, **kw)


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
