"""`matteconv quantize MODEL --golden G -o OUT`: the whole job, as a library call.

OUT is a folder:
    quant.json             the quantization record (record.py)
    amct_config.cfg        AMCT's simplified configuration (amct_config.py), checked against the schema
    calibration/<input>/   the calibration inputs as raw float32 .bin, for AMCT's --data_dir
    amct_command.txt       the exact amct_onnx / amct_caffe command
    amct.log, <stem>_deploy_model.onnx, <stem>_fake_quant_model.onnx     when AMCT is present (ONNX)
    amct.log, <stem>_deploy_model.prototxt + _deploy_weights.caffemodel (linked as <stem>_deploy_model.caffemodel
        for atc), <stem>_fake_quant_model.prototxt + _fake_quant_weights.caffemodel     when AMCT is present (Caffe)
    <stem>_int8.om, .build.json, .build.log                              when atc is present too (`matteconv om`)
Each file is written whole (temporary + rename); the folder may hold earlier files of the same job.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MatteconvError
from ..fileio import atomic_path, check_output_folder, refuse_overwrite
from .calibrate import IfmrConfig
from .quantize import (Inputs, SkipResult, auto_skip, calibrate, errors, golden_inputs, image_inputs, predict)
from .record import QuantRecord

RECORD, CONFIG, COMMAND, LOG = "quant.json", "amct_config.cfg", "amct_command.txt", "amct.log"


@dataclass
class QuantizeResult:
    out: Path
    record: QuantRecord
    config: Path
    command: str
    predicted: dict | None  # INT8 prediction vs float64 golden (None: not predicted, see why)
    fp16: dict | None
    skip: SkipResult | None = None
    amct: dict[str, Path] = field(default_factory=dict)  # outputs, when AMCT ran
    amct_status: str = ""  # ran | skipped: why
    om: Path | None = None
    om_status: str = ""
    om_command: str = ""
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from ..fileio import json_safe

        return json_safe({
            "out": str(self.out), "record": str(self.out / RECORD), "config": str(self.config),
            "amct_command": self.command, "amct": {k: str(v) for k, v in self.amct.items()},
            "amct_status": self.amct_status, "om": str(self.om) if self.om else None, "om_status": self.om_status,
            "om_command": self.om_command, "predicted_int8": self.predicted, "predicted_fp16": self.fp16,
            "int8_layers": len(self.record.quantized), "fp16_layers": len(self.record.skipped),
            "int8_macs_share": self.record.int8_share(),
            "skipped": [{"layer": r.name, "why": r.skip} for r in self.record.skipped],
            "trade": self.skip.trade() if self.skip else None, "seconds": self.seconds})


def quantize_job(model: str | Path, golden: str | Path, out: str | Path, images: str | Path | None = None,
                 activation_offset: bool = True, tolerance: dict | None = None, soc_version: str = "Ascend310",
                 aipp: str | Path | None = None, progress: Callable[[str], None] | None = None,
                 prune_seconds: float | None = None) -> QuantizeResult:
    model, out = Path(model), Path(out)
    say = progress or (lambda _m: None)
    if not model.is_file():
        raise MatteconvError(f"{model}: model file not found")
    if model.suffix.lower() not in (".onnx", ".prototxt"):
        raise MatteconvError(f"{model}: quantize takes an ONNX model (.onnx) or a Caffe `ascend` export (.prototxt)")
    if model.suffix.lower() == ".prototxt" and not model.with_suffix(".caffemodel").is_file():
        raise MatteconvError(f"{model}: weights not found (expected {model.with_suffix('.caffemodel')})")
    from ..ascend.command import check_soc_version, inspect_model
    from ..fileio import require_folder

    check_soc_version(soc_version)
    shapes = inspect_model(model).inputs  # "not a readable ONNX model" before anything runs
    if images is not None:
        require_folder(images)
    check_output_folder(out)
    if out.exists() and not out.is_dir():
        raise MatteconvError(f"{out}: exists and is a file, expected a folder")
    aipp = Path(aipp) if aipp is not None else None
    if aipp is not None:  # atc reads it only when AMCT and atc are here: a bad config is found now, not then
        from ..aipp import check_model_inputs, load_config

        check_model_inputs(load_config(aipp), shapes, soc_version)
    refuse_overwrite([out / RECORD, out / CONFIG, out / COMMAND], [model, golden, aipp])
    t0 = time.perf_counter()
    gold = golden_inputs(golden)
    check_golden_fits(model, shapes, gold, golden)
    calib: Inputs = gold
    if images is not None:
        size = tuple(int(d) for d in shapes[0][1][2:4])
        calib = image_inputs(images, size, sum(int(s[1]) for _, s in shapes))
    cfg = IfmrConfig(with_offset=activation_offset)
    secs = {}
    say(f"calibrating on {len(calib.xs)} input(s) (IFMR, ARQ)")
    record = calibrate(model, calib, cfg)
    secs["calibration"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    say("predicting the INT8 .om")
    predicted = errors(predict(model, record, gold.xs), gold.goldens)
    secs["prediction"] = time.perf_counter() - t1
    fp16 = errors(predict(model, None, gold.xs), gold.goldens)
    skip = None
    if tolerance is not None:
        t1 = time.perf_counter()
        skip = auto_skip(model, record, gold, tolerance, lambda m: say(f"automatic skip: {m}"), prune_seconds)
        record, predicted = skip.record, skip.error
        secs["automatic_skip"] = time.perf_counter() - t1
    out.mkdir(parents=True, exist_ok=True)
    from .amct_config import parse_config, render_config

    text = render_config(record)
    parse_config(text, str(out / CONFIG))  # what we write must parse against the documented schema
    record.save(out / RECORD)
    with atomic_path(out / CONFIG) as tmp:
        tmp.write_text(text, encoding="utf-8")
    from .amct import plan_amct, run_amct, write_calibration_data

    names = [n for n, _ in _inputs_of(model)]
    dirs = write_calibration_data(calib.xs, names, out / "calibration")
    plan = plan_amct(model, out / CONFIG, dirs, len(calib.xs), out / model.stem)
    with atomic_path(out / COMMAND) as tmp:
        tmp.write_text(plan.command + "\n", encoding="utf-8")
    result = QuantizeResult(out, record, out / CONFIG, plan.command, predicted, fp16, skip, seconds=secs)
    if plan.tool is None:
        result.amct_status = f"skipped: {plan.argv[0]} not found (run {out / COMMAND} on a machine with AMCT)"
        return result
    say(f"running {plan.tool.name}")
    result.amct = run_amct(plan, out, out / LOG)
    result.amct_status = "ran"
    _build_om(result, model, soc_version, aipp)
    secs["total"] = time.perf_counter() - t0
    return result


def check_golden_fits(model: Path, shapes: list[tuple[str, tuple[int, ...]]], gold: Inputs, golden) -> None:
    """The model's fixed input size and channels are the golden set's (as `compare` says it), before anything runs."""
    if not gold.xs or not shapes:
        return
    _, channels, gh, gw = gold.xs[0].shape
    dims = shapes[0][1]
    size = tuple(int(d) for d in dims[2:4]) if len(dims) == 4 else ()
    if len(size) == 2 and all(d > 0 for d in size) and size != (gh, gw):
        raise MatteconvError(f"{model}: fixed input size {size[0]}x{size[1]} differs from the golden set's {gh}x{gw} "
                             f"({golden}); make a golden set at {size[0]}x{size[1]} (matteconv golden make --size "
                             f"{size[0]}x{size[1]}) or export at {gh}x{gw}")
    model_channels = [int(s[1]) if len(s) > 1 else 0 for _, s in shapes]
    if all(c > 0 for c in model_channels) and sum(model_channels) != channels:
        raise MatteconvError(f"{model}: takes {sum(model_channels)} input channels, the golden set {golden} was made "
                             f"for {channels}")


def _inputs_of(model: Path):
    from .amct import model_inputs

    return model_inputs(model)


def _build_om(result: QuantizeResult, model: Path, soc_version: str, aipp) -> None:
    """`matteconv om` on the deploy model; its build record says INT8 and names the record and the float model."""
    from ..ascend.build import plan_build, run_build

    deploy = result.amct["deploy"]
    if "deploy_weights" in result.amct:  # Caffe: atc takes the .caffemodel of the prototxt's stem (ascend.command)
        _link_or_copy(result.amct["deploy_weights"], deploy.with_suffix(".caffemodel"))
    stem = result.out / f"{model.stem}_int8"
    plan = plan_build(deploy, stem, aipp, soc_version)
    result.om_command = plan.command
    if plan.tool is None:
        result.om_status = f"skipped: atc not found (run on a machine with the toolkit: {plan.command})"
        return
    extra = {"int8": {"record": str((result.out / RECORD).resolve()), "source_model": str(model.resolve()),
                      "deploy_model": str(deploy.resolve()), "int8_macs_share": result.record.int8_share()}}
    built = run_build(plan, extra=extra)
    result.om, result.om_status = built.om, "built"


def _link_or_copy(src: Path, dst: Path) -> None:
    """dst as a hard link to src (a copy where links fail), replacing an earlier one."""
    import os
    import shutil

    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
