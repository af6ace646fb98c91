"""`matteconv quantize` as a library: calibrate a model as AMCT does, predict its INT8 .om against the float64
golden alphas, rank layers by the error that quantizing each alone adds, and skip (keep fp16) the fewest layers
that bring the prediction within a tolerance.

Automatic skip (greedy, stated): layers are ranked by the max |d alpha| that quantizing each one alone adds over
the fp16 prediction on the input where the all-INT8 model is worst; the shortest prefix of that ranking kept fp16
that brings the whole golden set within the tolerance is found by bisection (assuming the error falls as the
prefix grows; the result is checked); then each kept layer is tried again in INT8, the one with the most MACs first
(ties in ranking order), and stays INT8 if the tolerance still holds. Greedy, so "fewest" is not proven
minimal. Why MACs first: INT8 is where the chip's throughput is (16 TOPS against 8 TFLOPS fp16), and on the
official MODNet at 320 (golden/real/320, docs/official-model.md) giving back the least harmful layers first stopped
at 57 kept (75.7% of the MACs in INT8), the heavy high-resolution and fusion convolutions among them, while the
same number of trials in MACs order keeps 46 (83.5% INT8), all but one in the backbone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MatteconvError
from ..fileio import sha256_file
from .calibrate import IfmrConfig, arq_scales, calibrate_activations
from .record import LayerRecord, QuantRecord
from .rules import plan_layers

AUTO_SKIP = "automatic skip: kept fp16 to meet the tolerance"


@dataclass
class Inputs:
    """Model inputs (1xCxHxW float32) by name, and (for golden sets) their float64 alphas."""

    names: list[str]
    xs: list[np.ndarray]
    goldens: list[np.ndarray] = field(default_factory=list)
    source: str = ""


def golden_inputs(golden_dir: str | Path) -> Inputs:
    from ..verify.golden import load_golden, model_input

    gset = load_golden(golden_dir)
    xs = [model_input(f, p) for f, p in zip(gset.frames(), gset.prev_alphas())]
    goldens = [it.golden_alpha().astype(np.float64) for it in gset.items]
    return Inputs([it.name for it in gset.items], xs, goldens, str(gset.root))


def image_inputs(folder: str | Path, size: tuple[int, int], in_channels: int, policy: str = "device") -> Inputs:
    """Calibration images from a folder, prepared as the golden sets are; a 4-channel model is fed a zero previous
    alpha (the first frame of a clip)."""
    from .. import preprocess
    from ..verify.golden import list_images, model_input, read_image

    names, xs = [], []
    for p in list_images(Path(folder)):
        frame = preprocess.prepare(read_image(p), policy, size).frame
        prev = np.zeros(size, np.float32) if in_channels == 4 else None
        names.append(p.stem)
        xs.append(model_input(frame, prev))
    return Inputs(names, xs, source=str(folder))


def _onnx_tensors(path: Path, names: list[str], threads: int = 2) -> Callable[[np.ndarray], dict]:
    """x -> {name: tensor} for the fp32 model (what AMCT calibrates on): one session whose outputs include every
    named value (graph inputs are taken from the feed)."""
    import onnx

    from ..backends import ort_session

    model = onnx.load(str(path))
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    existing = {o.name for o in model.graph.output}
    for n in names:
        if n not in existing and n not in graph_inputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    sess = ort_session(model.SerializeToString(), threads, f"{path} (calibration outputs)")
    outs = [o.name for o in sess.get_outputs()]

    def run(x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        feeds = ({graph_inputs[0]: x[:, :3], graph_inputs[1]: x[:, 3:4]} if len(graph_inputs) == 2
                 else {graph_inputs[0]: x})
        return {**dict(zip(outs, sess.run(outs, feeds))), **feeds}

    return run


def calibrate(model: str | Path, inputs: Inputs, cfg: IfmrConfig = IfmrConfig(),
              progress: Callable[[int], None] | None = None) -> QuantRecord:
    """IFMR on every quantizable layer's input over `inputs`, ARQ on its weights: the all-INT8 record (layers that
    AMCT or matteconv cannot quantize are recorded as skipped, with why). ONNX models in onnxruntime; Caffe exports
    (.prototxt + .caffemodel) in pycaffe, both in float32 as AMCT calibrates."""
    plan = plan_layers(model)
    todo = [layer for layer in plan.layers if layer.skip is None]
    if plan.framework == "onnx":
        import onnx
        from onnx import numpy_helper

        inits = {i.name: i for i in onnx.load(str(plan.path)).graph.initializer}
        weights = {x.name: numpy_helper.to_array(inits[x.weight]) for x in todo}
        keys = {x.name: x.input for x in todo}  # one observer per tensor
        acts = calibrate_activations(_onnx_tensors(plan.path, sorted(set(keys.values()))), inputs.xs,
                                     sorted(set(keys.values())), cfg, progress)
    else:
        from .caffe_emu import CaffeCalibrator, caffe_params

        keys = {x.name: x.name for x in todo}  # the input of each layer, as the layer reads it
        with CaffeCalibrator(plan.path) as net:
            weights = {n: ps[0] for n, ps in caffe_params(net.worker, list(keys)).items()}
            acts = calibrate_activations(net.layer_inputs(list(keys)), inputs.xs, list(keys), cfg, progress)
    layers = []
    for layer in plan.layers:
        rec = LayerRecord(layer.name, layer.op, layer.macs, axis=layer.axis, skip=layer.skip)
        if layer.skip is None:
            rec.weight_scales = [float(s) for s in arq_scales(weights[layer.name], layer.axis, layer.channel_wise)]
            rec.act_scale, rec.act_offset, rec.calibration = acts[keys[layer.name]]
        layers.append(rec)
    return QuantRecord(str(plan.path), sha256_file(plan.path), plan.framework, cfg.with_offset, ifmr_dict(cfg),
                       inputs.names, layers, plan.total_macs)


def ifmr_dict(cfg: IfmrConfig) -> dict:
    """The IFMR fields of the record (and of the config's ifmr_quantize)."""
    return {k: getattr(cfg, k) for k in ("max_percentile", "min_percentile", "search_range_start",
                                         "search_range_end", "search_step")}


def predict(model: str | Path, record: QuantRecord | None, xs: list[np.ndarray], threads: int = 2) -> list[np.ndarray]:
    """Predicted alphas (HxW float64) of the INT8 .om (record) or, with record None, the fp16 .om."""
    if record is None:
        from ..fp16 import open_fp16_backend

        backend = open_fp16_backend(model, threads)
    else:
        from .emulate import open_int8_backend

        backend = open_int8_backend(model, record, threads)
    return [backend.run(x)[0, 0].astype(np.float64) for x in xs]


def errors(alphas: list[np.ndarray], goldens: list[np.ndarray]) -> dict[str, float]:
    """Worst max |d| and worst mean |d| over the inputs, and the same over each input's confident pixels
    (golden alpha < 0.05 or > 0.95, `metrics.confident_errors`), as verify judges a stage."""
    from ..verify.metrics import confident_errors

    d = [np.abs(a - g) for a, g in zip(alphas, goldens)]
    conf = [confident_errors(a, g) for a, g in zip(alphas, goldens)]
    return {"max_abs": float(max(x.max() for x in d)), "mean_abs": float(max(x.mean() for x in d)),
            "confident_max_abs": float(max(c["confident_max_abs"] for c in conf)),
            "confident_mean_abs": float(max(c["confident_mean_abs"] for c in conf))}


def within(err: dict, tol: dict) -> bool:
    """Every figure the tolerance names (max_abs, mean_abs and, if given, confident_max_abs, confident_mean_abs)
    at or under it."""
    return all(err[k] <= v for k, v in tol.items())


@dataclass
class LayerHarm:
    name: str
    op: str
    macs: int
    max_abs: float  # alpha error with this layer alone INT8 (vs float64)
    mean_abs: float
    added_max: float  # over the fp16 prediction
    added_mean: float


def switchable(model: str | Path, record: QuantRecord, threads: int = 2):
    """An INT8 emulator whose run(x, int8) computes only the layers of `int8` in INT8: the switchable ONNX model,
    or the Caffe emulator (which switches per run)."""
    if Path(model).suffix.lower() == ".prototxt":
        from .caffe_emu import Int8CaffeBackend

        return Int8CaffeBackend(model, record)
    from .emulate import SwitchableInt8

    return SwitchableInt8(model, record, threads)


def switched_errors(backend, xs: list[np.ndarray], goldens: list[np.ndarray], int8: set[str]) -> dict:
    return errors([backend.run(x, int8)[0, 0].astype(np.float64) for x in xs], goldens)


def rank_layers(backend, xs: list[np.ndarray], goldens: list[np.ndarray],
                progress: Callable[[str], None] | None = None) -> list[LayerHarm]:
    """Each INT8 layer of a switchable backend quantized alone (all else fp16) on `xs`: the error it adds over
    the fp16 prediction, most harmful first."""
    base = switched_errors(backend, xs, goldens, set())
    ops = {r.name: r for r in backend.record.quantized}
    out = []
    for name in backend.layers:
        if progress:
            progress(name)
        e = switched_errors(backend, xs, goldens, {name})
        out.append(LayerHarm(name, ops[name].op, ops[name].macs, e["max_abs"], e["mean_abs"],
                             e["max_abs"] - base["max_abs"], e["mean_abs"] - base["mean_abs"]))
    return sorted(out, key=lambda h: (-h.added_max, -h.added_mean))


@dataclass
class SkipResult:
    record: QuantRecord
    kept_fp16: list[str]  # layers the automatic skip keeps fp16
    error: dict  # predicted error of the result
    all_int8_error: dict
    fp16_error: dict
    evaluations: int
    seconds: float
    met: bool
    note: str = ""  # why the search stopped early, if it did

    def trade(self) -> dict:
        kept = set(self.kept_fp16)
        kept_macs = sum(r.macs for r in self.record.layers if r.name in kept)
        return {"kept_fp16": self.kept_fp16, "kept_macs_share": kept_macs / self.record.total_macs,
                "int8_macs_share": self.record.int8_share(), "predicted": self.error,
                "all_int8": self.all_int8_error, "fp16": self.fp16_error, "met": self.met, "note": self.note}


def auto_skip(model: str | Path, record: QuantRecord, inputs: Inputs, tolerance: dict,
              progress: Callable[[str], None] | None = None, prune_seconds: float | None = None) -> SkipResult:
    """The greedy automatic skip (module doc), on one switchable emulator session. `prune_seconds`: stop giving
    layers back to INT8 after this long (the result still meets the tolerance; `note` says so). Each trial costs
    one prediction of the whole golden set, so a model that must keep most layers fp16 prunes for long."""
    t0 = time.perf_counter()
    if not inputs.goldens:
        raise MatteconvError("--tolerance needs golden alphas to judge against: give --golden")
    backend = switchable(model, record)
    everything = set(backend.layers)

    def err_with(kept: list[str]) -> dict:
        return switched_errors(backend, inputs.xs, inputs.goldens, everything - set(kept))

    fp16_err = err_with(list(everything))
    alphas = [backend.run(x, everything)[0, 0].astype(np.float64) for x in inputs.xs]
    all_err = errors(alphas, inputs.goldens)
    n_eval = 2
    if within(all_err, tolerance):
        return SkipResult(record, [], all_err, all_err, fp16_err, n_eval, time.perf_counter() - t0, True)
    if not within(fp16_err, tolerance):  # every layer fp16 is the best any skip can do
        return SkipResult(record, [], all_err, all_err, fp16_err, n_eval, time.perf_counter() - t0, False,
                          "the fp16 prediction itself misses the tolerance: no choice of fp16 layers can meet it")
    worst = int(np.argmax([np.abs(a - g).max() for a, g in zip(alphas, inputs.goldens)]))
    ranked = rank_layers(backend, [inputs.xs[worst]], [inputs.goldens[worst]], progress)
    n_eval += len(ranked) + 1
    names = [h.name for h in ranked]
    lo, hi = 0, len(names)  # keeping names[:hi] fp16 meets the tolerance (all fp16: assumed; checked below)
    while hi - lo > 1:  # bisect the ranked prefix: error assumed to fall as more of it stays fp16
        mid = (lo + hi) // 2
        if progress:
            progress(f"trying {mid} layer(s) fp16")
        n_eval += 1
        if within(err_with(names[:mid]), tolerance):
            hi = mid
        else:
            lo = mid
    kept = names[:hi]
    err = err_with(kept)
    n_eval += 1
    met = within(err, tolerance)
    note, t_prune = "", time.perf_counter()
    if met:  # prune: give back to INT8 what the tolerance does not need, most MACs first (module doc)
        macs = {h.name: h.macs for h in ranked}
        order = sorted(kept, key=lambda n: -macs[n])  # stable: equal MACs in ranking order, most harmful first
        for i, name in enumerate(order):
            if prune_seconds is not None and time.perf_counter() - t_prune > prune_seconds:
                note = (f"prune stopped after {time.perf_counter() - t_prune:.0f} s with {len(order) - i} "
                        "layer(s) not tried back in INT8")
                break
            if progress:
                progress(f"trying {name} back in INT8")
            trial = [k for k in kept if k != name]
            e = err_with(trial)
            n_eval += 1
            if within(e, tolerance):
                kept, err = trial, e
    return SkipResult(record.with_skips(kept, AUTO_SKIP), kept, err, all_err, fp16_err, n_eval,
                      time.perf_counter() - t0, met, note)
