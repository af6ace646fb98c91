"""The two Ascend stages.

aipp: each golden frame is encoded to the config's raw camera format, put through the emulated AIPP and into the
ONNX model. The baseline is the same raw frame decoded by OpenCV, then our reference preprocessing (the YUV round
trip's own effect). The stage is judged on the model input (emulated AIPP vs that baseline, in LSB), where a wrong
matrix, swap or mean shows up and chroma subsampling (which no config can undo) does not; alpha errors vs golden
and vs the baseline are reported beside it.

om: the .om on a device through msame/ais_bench; raw uint8 frames when it was built with AIPP. Its reference is,
built with AIPP, the emulated AIPP feeding the model it was built from (found through OUT.build.json), so the
YUV round trip is not counted; without AIPP, the golden alpha. It is judged against the predicted .om: the same
source model under the fp16 device model (matteconv.fp16) on the same input; its error from the reference may be
at most PREDICTED_FACTOR x the prediction's plus a floor (verify/run.py). Without a build record, at the fixed
fp16 tolerance. An .om built by `matteconv quantize` (its build record has `int8`) is predicted by the INT8
device model (matteconv.int8) from the float model and the quantization record.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..backends import OnnxBackend
from ..errors import MatteconvError
from ..fileio import scratch_dir
from .golden import GoldenSet, model_input
from .stages import Stage, check_size

OPENCV_DECODE = {(True, "YUV420SP_U8"): cv2.COLOR_YUV2RGB_NV21, (False, "YUV420SP_U8"): cv2.COLOR_YUV2RGB_NV12}


def reference_decode(op, raw: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """What a host would do with the raw frame: OpenCV's decoder (BT.601 video range), as RGB uint8."""
    from ..aipp.emulate import decode_raw

    if op.input_format == "YUV420SP_U8":
        yuv = np.asarray(raw, np.uint8).reshape(hw[0] * 3 // 2, hw[1])
        return cv2.cvtColor(yuv, OPENCV_DECODE[(bool(op.get("rbuv_swap_switch", False)), op.input_format)])
    return decode_raw(op, raw, hw)


def camera_frame(frame: np.ndarray) -> np.ndarray:
    """A golden frame as the uint8 camera frame AIPP reads. The official policy (golden/real/official) keeps its
    frames float64 (a float resize); at an input already of its official size they hold whole pixel values and
    convert exactly. A frame a float resize moved off whole values has no uint8 camera frame: one line says so."""
    a = np.asarray(frame)
    if a.dtype == np.uint8:
        return a
    r = np.rint(a)
    if a.size and np.array_equal(r, a) and r.min() >= 0 and r.max() <= 255:
        return r.astype(np.uint8)
    raise MatteconvError("the aipp stage feeds uint8 camera frames; this golden set's frames were resized in "
                         "floating point (policy `official` at another size): use a `device` set")


def aipp_input_lsb(cfg, frame: np.ndarray) -> dict[str, float]:
    """Emulated AIPP output vs OpenCV's decode of the same raw frame + our normalisation, in LSB (1/127.5), for an
    HxWx3 uint8 RGB frame at the config's source size: input_max_lsb, input_mean_lsb, input_fraction_lsb. Both
    decode to whole pixel values, so with the right mean and scale every difference is a whole number of LSB: a
    fractional part (mean 127 instead of 127.5 gives 0.5 everywhere) is a normalisation error, whatever the
    rounding. AIPP floors (`>> 8`) where OpenCV rounds: 0 or 1 LSB per pixel for a right config (golden.HARD_AIPP)."""
    from ..aipp import aipp_model_input
    from ..aipp.emulate import encode_for

    op = cfg.op_for_input(0)
    hw = tuple(np.asarray(frame).shape[:2])
    rgb = reference_decode(op, encode_for(op, frame), hw)
    d = np.abs(aipp_model_input(frame, cfg).astype(np.float64) - model_input(rgb, None, np.float64)) * 127.5
    return {"input_max_lsb": float(d.max()), "input_mean_lsb": float(d.mean()),
            "input_fraction_lsb": float(np.abs(d - np.rint(d)).mean())}


def aipp_stage(cfg_path: Path | None, onnx_path: Path | None, gset: GoldenSet) -> Stage:
    from ..aipp import aipp_model_input, load_config
    from ..aipp.emulate import encode_for

    if cfg_path is None:
        return Stage("aipp", "-", skip="no --aipp config given")
    if onnx_path is None:
        return Stage("aipp", str(cfg_path), error=f"{cfg_path}: the aipp stage feeds the --onnx model; give one")
    try:
        cfg = load_config(cfg_path)
        backend = OnnxBackend(onnx_path)
    except MatteconvError as e:
        return Stage("aipp", str(cfg_path), error=str(e))
    problem = check_size(backend, gset, str(onnx_path))
    op = cfg.op_for_input(0)
    if op is None:
        problem = problem or f"{cfg_path}: no aipp_op for input 0 (the image)"
    elif op.src_hw() not in (None, gset.size):
        problem = problem or (f"{cfg_path}: AIPP source is {op.src_hw()[1]}x{op.src_hw()[0]}, golden frames are "
                              f"{gset.size[1]}x{gset.size[0]}")
    if problem:
        return Stage("aipp", str(cfg_path), error=problem)

    def run(frame, prev):  # a frame with no uint8 camera frame: the stage's error (run_stage), naming why
        x = aipp_model_input(camera_frame(frame), cfg)
        if prev is not None:
            x = np.concatenate([x, np.asarray(prev, np.float32)[None, None]], axis=1)
        return backend.run(x)[0, 0]

    def baseline(frame, prev):
        rgb = reference_decode(op, encode_for(op, camera_frame(frame)), gset.size)
        return backend.run(model_input(rgb, prev))[0, 0]

    return Stage("aipp", f"{cfg_path} -> {onnx_path}", run, baseline=baseline,
                 input_check=lambda frame: aipp_input_lsb(cfg, camera_frame(frame)),
                 baseline_label="AIPP model input vs the same raw frame through OpenCV + reference preprocessing")


def om_stage(om_path: Path | None, gset: GoldenSet) -> Stage:
    from ..ascend.runners import find_runner, run_om

    if om_path is None:
        return Stage("om", "-", skip="no --om model given")
    runner = find_runner()
    if runner is None:
        return Stage("om", str(om_path), skip="no Ascend runtime found (msame or ais_bench)")
    if not Path(om_path).is_file():
        return Stage("om", str(om_path), error=f"{om_path}: .om file not found")
    from ..aipp import aipp_model_input
    from ..aipp.emulate import encode_for

    op, n_inputs, source = _build_record(Path(om_path))
    int8 = _int8_build(Path(om_path))
    if int8 is not None:  # built from an AMCT deploy model: predicted from the float model + its record
        source = Path(int8["source_model"])
    work = scratch_dir("matteconv-om-")

    def with_prev(x, prev):
        return x if prev is None else np.concatenate([x, np.asarray(prev, np.float32)[None, None]], axis=1)

    def run(frame, prev):
        if n_inputs == 2:  # split temporal model: image (raw frame under AIPP) + prev_alpha (float)
            image = encode_for(op, frame) if op is not None else model_input(frame, None)
            inputs = [image, np.asarray(prev, np.float32)[None, None]]
        else:
            inputs = [encode_for(op, frame) if op is not None else model_input(frame, prev)]
        out = run_om(om_path, inputs, work, runner=runner)[0]
        return np.asarray(out, np.float32).reshape(gset.size)

    if source is None:  # no build record: nothing to predict from, judged at the fixed fp16 tolerance
        if op is not None:
            return Stage("om", str(om_path), error=f"{om_path}: built with AIPP from a model that is not recorded")
        return Stage("om", str(om_path), run)
    if not source.is_file():
        return Stage("om", str(om_path), error=f"{om_path}: built from {source}, which is not here to compare "
                                                f"against (keep the model beside OUT.build.json)")
    try:
        from ..backends import open_backend
        from ..fp16 import open_fp16_backend

        if int8 is not None:
            from ..int8.emulate import open_int8_backend
            from ..int8.record import load_record

            predictor = open_int8_backend(source, load_record(int8["record"]))
        else:
            predictor = open_fp16_backend(source)
        backend = open_backend(source) if op is not None else None
    except MatteconvError as e:
        return Stage("om", str(om_path), error=str(e))

    def predict(frame, prev):
        """The predicted .om: the source model under the device model, fed what the device is fed."""
        x = aipp_model_input(frame, op, fp16=True) if op is not None else model_input(frame, None)
        return predictor.run(with_prev(x, prev))[0, 0]

    if op is None:
        return Stage("om", str(om_path), run, predict=predict)

    def baseline(frame, prev):
        return backend.run(with_prev(aipp_model_input(frame, op), prev))[0, 0]

    return Stage("om", str(om_path), run, baseline=baseline, predict=predict,
                 baseline_label=f"vs emulated AIPP into {source.name}")


def _int8_build(om_path: Path) -> dict | None:
    """The `int8` entry `matteconv quantize` puts in OUT.build.json (record, source_model), or None."""
    record = om_path.with_suffix(".build.json")
    return json.loads(record.read_text()).get("int8") if record.is_file() else None


def _build_record(om_path: Path):
    """From OUT.build.json beside the .om: the AIPP op of input 0 (None: plain float input), the input count and
    the source model it was built from."""
    record = om_path.with_suffix(".build.json")
    if not record.is_file():
        return None, 1, None
    from ..aipp import parse_config

    info = json.loads(record.read_text())
    text = info.get("aipp_config")
    op = parse_config(text, str(record)).op_for_input(0) if text else None
    source = next((Path(a.split("=", 1)[1]) for a in info.get("argv", []) if a.startswith("--model=")), None)
    return op, max(1, len(info.get("model_inputs") or [None])), source
