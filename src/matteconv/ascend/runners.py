"""Run an .om on the device with Huawei's command-line runners and read the outputs back as numpy arrays.

msame:     msame --model x.om --input a.bin,b.bin --output DIR --outfmt BIN
ais_bench: python3 -m ais_bench --model x.om --input a.bin,b.bin --output DIR --outfmt NPY
Inputs are written raw in the layout the .om expects: an AIPP input is the uint8 frame as the camera gives it
(NHWC RGB, or an NV12/NV21 buffer), a plain input float32 NCHW. Both runners put outputs in a time-stamped
sub-folder named `..._output_<k>.bin|npy` (or `..._<k>.npy`); we collect them by that index.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import MatteconvError
from ..proc import run as run_in_group

INPUT_DTYPES = (np.uint8, np.float32, np.float16, np.int32)


@dataclass(frozen=True)
class Runner:
    """A way to run an .om: kind (msame|ais_bench) and the argv prefix that starts it."""

    kind: str
    prefix: tuple[str, ...]


def find_runner(env: Mapping[str, str] | None = None, prefer: str | None = None) -> Runner | None:
    """msame on PATH, else ais_bench (importable here, or `ais_bench` on PATH); None when neither exists."""
    env = os.environ if env is None else env
    path = env.get("PATH", "")
    order = [prefer] if prefer else ["msame", "ais_bench"]
    for kind in order:
        if kind == "msame":
            exe = shutil.which("msame", path=path)
            if exe:
                return Runner("msame", (exe,))
        elif kind == "ais_bench":
            if importlib.util.find_spec("ais_bench") is not None:
                return Runner("ais_bench", (sys.executable, "-m", "ais_bench"))
            exe = shutil.which("ais_bench", path=path)
            if exe:
                return Runner("ais_bench", (exe,))
        else:
            raise MatteconvError(f"unknown runner {kind!r} (msame or ais_bench)")
    return None


def write_inputs(inputs: Sequence[np.ndarray], workdir: Path) -> list[Path]:
    """Each array -> workdir/input_<k>.bin, raw C-order bytes in its own dtype (uint8 or float32 expected)."""
    paths = []
    for k, arr in enumerate(inputs):
        a = np.asarray(arr)
        if a.dtype not in INPUT_DTYPES:
            raise MatteconvError(f"input {k} has dtype {a.dtype}: the .om takes uint8 (AIPP) or float32 inputs")
        p = workdir / f"input_{k}.bin"
        np.ascontiguousarray(a).tofile(p)
        paths.append(p)
    return paths


_INDEX = re.compile(r"_(\d+)\.(?:bin|npy)$")


def read_outputs(outdir: Path, kind: str, dtypes: Sequence | None = None,
                 shapes: Sequence[tuple[int, ...]] | None = None) -> list[np.ndarray]:
    """Collect output files under outdir (any depth), ordered by their trailing _<k> index."""
    ext = ".bin" if kind == "msame" else ".npy"
    files = [p for p in outdir.rglob(f"*{ext}") if _INDEX.search(p.name)]
    if not files:
        raise MatteconvError(f"{outdir}: the runner wrote no *{ext} outputs")
    files.sort(key=lambda p: int(_INDEX.search(p.name).group(1)))
    outs = []
    for k, p in enumerate(files):
        if ext == ".npy":
            a = np.load(p, allow_pickle=False)
        else:
            dt = np.dtype(dtypes[k]) if dtypes and k < len(dtypes) else np.dtype(np.float32)
            a = np.fromfile(p, dtype=dt)
        if shapes and k < len(shapes) and shapes[k] is not None:
            try:
                a = a.reshape(shapes[k])
            except ValueError:
                raise MatteconvError(f"{p}: {a.size} values do not fit the expected shape {shapes[k]}") from None
        outs.append(a)
    return outs


def run_om(om_path: str | Path, inputs: Sequence[np.ndarray], workdir: str | Path, runner: Runner | None = None,
           timeout: float = 600.0, output_shapes: Sequence[tuple[int, ...]] | None = None,
           output_dtypes: Sequence | None = None) -> list[np.ndarray]:
    """Run the .om once on `inputs` and return its outputs (float32 unless output_dtypes says otherwise)."""
    om = Path(om_path)
    if not om.is_file():
        raise MatteconvError(f"{om}: .om file not found")
    runner = runner or find_runner()
    if runner is None:
        raise MatteconvError("no on-device runner found: install msame (on PATH) or ais_bench "
                             "(python3 -m ais_bench) on the Ascend machine")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    outdir = work / "out"
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir()
    bins = write_inputs(inputs, work)
    fmt = "BIN" if runner.kind == "msame" else "NPY"
    argv = [*runner.prefix, "--model", str(om), "--input", ",".join(str(b) for b in bins),
            "--output", str(outdir), "--outfmt", fmt]
    try:
        proc = run_in_group(argv, timeout)
    except subprocess.TimeoutExpired:
        raise MatteconvError(f"{runner.kind} timed out after {timeout:g} s running {om}") from None
    except OSError as e:
        raise MatteconvError(f"could not start {runner.prefix[0]}: {e}") from None
    text = proc.stdout.decode("utf-8", errors="replace")
    (work / f"{runner.kind}.log").write_text(text, encoding="utf-8")
    if proc.returncode != 0:
        from .build import error_lines

        lines = error_lines(text) or text.strip().splitlines()[-3:]
        raise MatteconvError(f"{runner.kind} exited with code {proc.returncode} running {om}: "
                             f"{' | '.join(lines)} (log: {work / (runner.kind + '.log')})")
    return read_outputs(outdir, runner.kind, output_dtypes, output_shapes)
