"""Run a generated app, unchanged, on the host: its own main.py in a child Python whose path starts with the
stand-in `hilens`, `acl` and `ais_bench` modules (deploy/standins), which run the .om as the model it was built
from behind the emulated AIPP. The app's output appears at OUTPUT only when the run succeeds.

HiLens apps read the input as their camera (hilens.VideoCapture(path), as the framework reads an mp4) and show on
the HDMI display, which the stand-in records to OUTPUT; pyACL and ais_bench apps get --input/--output as on a board.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MatteconvError
from ..fileio import check_output_folder, publish
from . import simhost
from .device import PRECISION_ENV, read_record
from .generate import check_layout


@dataclass
class SimulationResult:
    app: Path
    output: Path
    runtime: str
    stats: dict  # the app's own statistics (--stats-json)
    device: dict  # what the stand-in module counted (acl allocations, hilens frames shown, ...)
    lines: list[str] = field(default_factory=list)  # what the app printed


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of the app's process: stand-ins first on PYTHONPATH, then this matteconv's source."""
    import matteconv

    env = dict(os.environ)
    paths = [str(simhost.STANDINS), str(Path(matteconv.__file__).resolve().parents[1])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def load_app(app: Path) -> dict:
    cfg_path = app / "app_config.json"
    if not (app / "main.py").is_file() or not cfg_path.is_file():
        raise MatteconvError(f"{app}: not a generated app (no main.py and app_config.json)")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise MatteconvError(f"{cfg_path}: not valid JSON ({e})") from None


def check_simulation_paths(input: str | Path, output: str | Path) -> None:
    """What a simulation needs before anything runs or is written: the input exists, the output's folder
    exists and the output does not (an empty folder is fine for PNG frames), and they are not the same path."""
    input, output = Path(input), Path(output)
    if not input.exists():
        raise MatteconvError(f"{input}: input not found")
    check_output_folder(output)
    if output.exists() and (output.suffix or not output.is_dir() or any(output.iterdir())):
        raise MatteconvError(f"{output}: output exists (remove it or pick another)")


HILENS_DISPLAY_MIN = 128  # HiLens Display.show refuses a frame smaller than 128x128 (standins/hilens)


def check_simulation_input(input: str | Path, runtime: str, view: str = "frame", side_by_side: bool = False) -> None:
    """The simulation input is one the app can run on, found before anything is written: a readable video, image
    or non-empty folder of images (matteconv's own reader, as the stand-in camera uses), and for HiLens' frame
    view (the display shows the whole frame) at least 128x128, the display's minimum."""
    from ..video import open_source

    src = open_source(input)
    h, w = src.size
    shown_w = 2 * w if side_by_side else w
    if runtime == "hilens" and view == "frame" and min(h, shown_w) < HILENS_DISPLAY_MIN:
        what = "image" if src.kind == "image" else "frames"
        raise MatteconvError(f"{input}: {w}x{h} {what}; the HiLens display (view 'frame' shows the whole frame) "
                             f"needs at least {HILENS_DISPLAY_MIN}x{HILENS_DISPLAY_MIN} (use larger input or "
                             "--view crop)")


def simulate(app: str | Path, input: str | Path, output: str | Path, frames: int | None = None,
             precision: str = "fp32", report_every: int | None = None, live: bool = False,
             bench_model: int | None = None, echo=None, timeout: float | None = None,
             offclock: bool = False) -> SimulationResult:
    """Run APP on INPUT (video file or folder of images) and write what it shows to OUTPUT (.mp4/.avi or a new
    folder of PNG frames). `echo(line)` receives each line the app prints. `bench_model=N` instead times N
    inferences alone (the app's --bench-model) and writes no output. `offclock`: the HiLens stand-ins emulate
    the board's camera and HDMI display outside the app's clock (simhost.OFFCLOCK_ENV; for benchmarks: the
    whole clip is held in memory); their cost is in `device["hilens"]["camera_ms"/"display_ms"]` either way."""
    app, input, output = Path(app).resolve(), Path(input), Path(output)
    cfg = load_app(app)
    check_simulation_paths(input, output)
    check_simulation_input(input, cfg.get("runtime", ""), cfg.get("view", "frame"), bool(cfg.get("side_by_side")))
    check_layout(cfg, read_record(app / cfg["model"]), str(app / "app_config.json"))
    work = Path(tempfile.mkdtemp(prefix=".matteconv-sim-", dir=output.parent)).resolve()
    try:
        tmp_out = work / ("out" + output.suffix)
        stats_path, device_dir = work / "stats.json", work / "device"
        device_dir.mkdir()
        env = {simhost.STATS_ENV: str(device_dir), PRECISION_ENV: precision, "PYTHONUNBUFFERED": "1",
               simhost.OFFCLOCK_ENV: "1" if offclock else "0"}
        argv = [sys.executable, str(app / "main.py"), "--input", str(input.resolve()), "--stats-json", str(stats_path)]
        if cfg["runtime"] == "hilens":
            env[simhost.DISPLAY_ENV] = str(tmp_out)
        else:
            argv += ["--output", str(tmp_out)]
        argv += ["--live"] if live else ["--no-live"]
        if frames:
            argv += ["--frames", str(frames)]
        if report_every:
            argv += ["--report-every", str(report_every)]
        if bench_model:
            argv += ["--bench-model", str(bench_model)]
        lines = _run(argv, app, child_env(env), echo, timeout, work / "stderr.txt")
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        device = {p.stem: json.loads(p.read_text()) for p in sorted(device_dir.glob("*.json"))}
        camera_error = device.get("hilens", {}).get("camera_error")
        if camera_error:  # the app stopped at a frame the stand-in camera could not read: not a clean end
            raise MatteconvError(f"{input}: the simulated camera stopped at a damaged frame ({camera_error})")
        if not bench_model:
            if not tmp_out.exists():
                raise MatteconvError(f"{app}: the app showed no frames (nothing written to {output})")
            publish(tmp_out, output)
        return SimulationResult(app, output, cfg["runtime"], stats, device, lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str], cwd: Path, env: dict, echo, timeout: float | None, stderr_path: Path) -> list[str]:
    """Run the app, pass each line it prints to `echo`, and turn a failure into one line naming the app."""
    lines: list[str] = []
    with open(stderr_path, "w+", encoding="utf-8") as err_file:
        proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=err_file,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if echo:
                    echo(lines[-1])
            code = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err_file.seek(0)
        err = err_file.read()
    if code != 0:
        errs = [ln for ln in err.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(errs) if ln.startswith("error:")), errs[-1] if errs else "")
        raise MatteconvError(f"{cwd}: the app exited with code {code}: {last.removeprefix('error: ')}")
    return lines
