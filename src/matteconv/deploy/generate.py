"""`matteconv deploy`: write the device app for an `.om` (and, for HiLens, the skill archive).

The app is the package folder `deploy/app/` copied verbatim (main.py, pipeline.py, stream.py, one runtime
adapter) plus what is generated: app_config.json (from OUT.build.json: input names, shapes, dtypes and byte
counts, the layout the AIPP config expects), the model, its build record and AIPP config, and a README for the
board. Before anything is written, a coloured test card is sent through the app's own encoder and the .om's
AIPP (emulated): a swapped NV12/NV21 (or RGB/BGR) shows as red arriving blue, and is refused.
"""
from __future__ import annotations

import json
import shutil
import string
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MatteconvError
from ..fileio import atomic_path, check_output_folder, publish
from .device import BuildRecord, read_record

RUNTIMES = ("hilens", "acl", "ais_bench")
APP_PACKAGE = Path(__file__).with_name("app")
COMMON_FILES = ("main.py", "pipeline.py", "stream.py")
RUNTIME_FILES = {"hilens": ("runtime_hilens.py",), "acl": ("runtime_acl.py", "frames_opencv.py"),
                 "ais_bench": ("runtime_ais_bench.py", "frames_opencv.py")}
VIEWS = ("frame", "crop")
POLICIES = ("auto", "device", "letterbox")  # the app's copy of matteconv.preprocess's fixed-size policies
LAYOUT_TOLERANCE_LSB = 6.0  # measured: a right layout reaches the model within 3 LSB (integer CSC rounding)


@dataclass
class DeployOptions:
    runtime: str = "hilens"
    background: str = "#2e8b57"  # colour, blur, or an image file (copied into the app)
    mirror: bool = False
    policy: str = "auto"  # device (centre crop), letterbox, or auto: as `matteconv matte` (preprocess.auto_policy)
    view: str = "frame"  # frame: like `matteconv matte`; crop: the seed's centre square at display_size
    display_size: int = 640
    side_by_side: bool = False
    temporal: bool = True
    camera: str | int | None = None  # hilens: None = built-in camera; acl/ais_bench: 0 = first USB camera
    display: str = "hdmi"  # hilens: hdmi, rtmp://..., or an .h264 file
    output: str = "matted.mp4"  # acl/ais_bench: a video file or a folder of PNG frames
    check_value: str = "matteconv"  # HiLens: must equal the skill's check value (校验值)
    report_every: int = 50
    queue_depth: int = 2
    device_id: int = 0


@dataclass
class DeployResult:
    app: Path
    archive: Path | None
    config: dict
    layout_error_lsb: float
    files: list[str] = field(default_factory=list)


def app_config(record: BuildRecord, opts: DeployOptions, background: str) -> dict:
    """app_config.json: what the app needs to feed this .om and how to show the result."""
    if opts.runtime not in RUNTIMES:
        raise MatteconvError(f"--runtime {opts.runtime}: choose from {', '.join(RUNTIMES)}")
    if opts.view not in VIEWS:
        raise MatteconvError(f"--view {opts.view}: choose from {', '.join(VIEWS)}")
    if opts.policy not in POLICIES:
        raise MatteconvError(f"--policy {opts.policy}: choose from {', '.join(POLICIES)}")
    ins = record.inputs
    if record.in_channels not in (3, 4):
        raise MatteconvError(f"{record.om}: the model takes {record.in_channels} channels (MODNet: 3, or 4 temporal)")
    if len(ins) == 1 and record.in_channels == 4 and ins[0].aipp is not None:
        raise MatteconvError(f"{record.om}: a 4-channel model with one AIPP input cannot take the previous alpha: "
                             "export with --split-inputs (image through AIPP + prev_alpha)")
    if len(ins) == 2 and ins[1].aipp is not None:
        raise MatteconvError(f"{record.om}: AIPP on the previous-alpha input {ins[1].name}: only the image takes AIPP")
    if ins[0].shape[0] != 1:
        raise MatteconvError(f"{record.om}: batch {ins[0].shape[0]}; the app sends one frame at a time (batch 1)")
    half = [t.name for t in ins if t.dtype not in ("uint8", "float32")]
    if opts.runtime == "hilens" and half:
        raise MatteconvError(f"{record.om}: input {half[0]} is fp16 (--input_fp16_nodes), but HiLens Model.infer "
                             "takes only uint8 or float32 (rebuild without it)")
    h, w = record.model_hw
    if opts.display_size < 128 or opts.display_size % 2:
        raise MatteconvError(f"--display-size {opts.display_size}: an even number >= 128 (HiLens Display minimum)")
    cfg = {
        "runtime": opts.runtime,
        "model": f"model/{record.om.name}",
        "model_size": [h, w],
        "in_channels": record.in_channels,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes} for t in ins],
        "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes}
                    for t in record.outputs],
        "input_layout": ins[0].layout,
        "color_range": ins[0].color_range,
        "mirror": opts.mirror,
        "policy": opts.policy,
        "view": opts.view,
        "display_size": opts.display_size,
        "side_by_side": opts.side_by_side,
        "background": background,
        "temporal": opts.temporal,
        "cut_threshold": 30.0,
        "empty_alpha": 0.05,
        "live": True,
        "queue_depth": opts.queue_depth,
        "report_every": opts.report_every,
    }
    if opts.runtime == "hilens":
        cfg.update(camera=opts.camera, display=opts.display, hilens_check_value=opts.check_value)
    else:
        cfg.update(camera=0 if opts.camera is None else opts.camera, output=opts.output, device_id=opts.device_id)
    return cfg


def test_card(h: int, w: int) -> np.ndarray:
    """Saturated red, green, blue, yellow, magenta, cyan, white and mid-grey patches on 2x2-aligned blocks."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
               (255, 255, 255), (128, 128, 128)]
    card = np.zeros((h, w, 3), np.uint8)
    bw = max(2, (w // len(colours)) & ~1)
    for i, c in enumerate(colours):
        card[:, i * bw:(i + 1) * bw] = c
    return card


def layout_error(cfg: dict, record: BuildRecord) -> tuple[float, str]:
    """Send the test card through the app's encoder (its own pipeline.py) and the .om's emulated AIPP; return
    the worst |model input - the card normalised| in LSB of 1/127.5, and what the red patch became."""
    from ..aipp import emulate
    from ..preprocess import normalize
    from .app import pipeline

    op = record.inputs[0].aipp
    if op is None:
        return 0.0, ""
    h, w = record.model_hw
    card = test_card(h, w)
    raw = pipeline.encode_input(card, cfg["input_layout"], cfg.get("color_range", "video"))
    x = emulate(op, raw, size=(h, w))
    d = np.abs(x.astype(np.float64) - normalize(card, np.float64)) * 127.5
    red = tuple(int(round(v)) for v in x[0, :, h // 2, 1] * 127.5 + 127.5)
    return float(d.max()), f"a red patch reaches the model as RGB {red}"


def check_layout(cfg: dict, record: BuildRecord, where: str) -> float:
    err, red = layout_error(cfg, record)
    if err > LAYOUT_TOLERANCE_LSB:
        fmt = record.inputs[0].aipp.input_format
        swap = bool(record.inputs[0].aipp.get("rbuv_swap_switch", False))
        raise MatteconvError(f"{where}: input_layout {cfg['input_layout']!r} does not match the .om's AIPP "
                             f"({fmt}, rbuv_swap_switch {str(swap).lower()}): {red}, {err:.0f} LSB off")
    return err


def check_background(text: str | None) -> str:
    """The --background as the app's config names it, checked as `matteconv matte` checks it (matte
    .parse_background: a colour #RRGGBB / #RGB / white, black, green, blue, blur, or a readable image file);
    'none' is refused (a display has no alpha). Cheap: called before anything is written."""
    from ..matte import parse_background

    text = (text or "").strip()
    if text.lower() == "none":
        raise MatteconvError("--background none: a display has no alpha; use a colour, blur or an image")
    parse_background(text)  # the app's pipeline.Background reads the same spellings
    return text


def _background(opts: DeployOptions, app_tmp: Path) -> str:
    """The background as the config names it; an image file is copied into the app."""
    text = check_background(opts.background)
    low = text.lower()
    if low == "blur" or low.startswith("#") or low in ("white", "black", "green", "blue"):
        return text
    src = Path(text)
    name = f"background{src.suffix.lower()}"
    shutil.copyfile(src, app_tmp / name)
    return name


def render_readme(cfg: dict, record: BuildRecord) -> str:
    template = string.Template((APP_PACKAGE / "README.board.md").read_text(encoding="utf-8"))
    h, w = record.model_hw
    ins = "\n".join(f"- `{i['name']}`: {i['dtype']} {i['bytes']} bytes (shape {i['shape']})" for i in cfg["inputs"])
    return template.substitute(runtime=cfg["runtime"], model=cfg["model"], width=w, height=h,
                               channels=cfg["in_channels"], layout=cfg["input_layout"], inputs=ins,
                               soc=record.soc_version or "?", output_dtype=cfg["outputs"][0]["dtype"])


def generate_app(om: str | Path, out: str | Path, opts: DeployOptions) -> DeployResult:
    """Write the app folder OUT (it must not exist, or be empty) and for HiLens OUT.zip (the skill archive)."""
    om, out = Path(om), Path(out)
    if not om.is_file():
        raise MatteconvError(f"{om}: .om file not found")
    record = read_record(om)
    check_output_folder(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MatteconvError(f"{out}: output exists and is not an empty folder (remove it or pick another)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        cfg = app_config(record, opts, _background(opts, tmp))
        err = check_layout(cfg, record, str(om))
        for name in COMMON_FILES + RUNTIME_FILES[opts.runtime]:
            shutil.copyfile(APP_PACKAGE / name, tmp / name)
        (tmp / "model").mkdir()
        shutil.copyfile(om, tmp / "model" / om.name)
        info = dict(record.info)
        if record.source is not None and record.source.is_file():
            info["source_model"] = str(record.source.resolve())  # found again by the host simulation
        (tmp / "model" / record.path.name).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if record.aipp_text:
            (tmp / "model" / "aipp.cfg").write_text(record.aipp_text, encoding="utf-8")
        (tmp / "app_config.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(render_readme(cfg, record), encoding="utf-8")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        archive = None
        if opts.runtime == "hilens":
            archive = out.with_name(out.name + ".zip")
            with atomic_path(archive) as zpath:
                with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
                    for f in files:  # main.py at the top level: the skill's 代码执行文件 (HiLens UG/使用空模板.md)
                        z.write(tmp / f, f)
        if out.exists():
            out.rmdir()
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DeployResult(out, archive, cfg, err, files)
