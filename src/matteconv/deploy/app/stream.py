# -*- coding: utf-8 -*-
"""Keep the NPU busy: capture + preprocess and composite + display run in their own threads beside inference.

    capture thread: read -> pre (decode, crop, resize, scene cut, model input)   --q_in-->
    main thread:    infer (previous alpha attached here: it is the last result)   --q_out-->
    show thread:    post (alpha back to the frame, composite) -> show

The queues are short (`queue_depth`). Live (a camera): a full queue drops its oldest frame, so latency stays
at a few frames when a stage falls behind; files: nothing is dropped, so every frame is shown in order. Per-
stage times and fps are printed every `report_every` frames, to put beside the seed's 44 ms / 60 ms.
"""
import json
import sys
import threading
import time

import queue

import numpy as np

import pipeline

STAGES = ("read", "pre", "infer", "post", "show")
_END = object()


class Stats(object):
    """Per-stage milliseconds and fps, printed every `every` frames and summed for the final line."""

    def __init__(self, every=50, out=None):
        self.every = max(1, int(every))
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.total = dict((s, 0.0) for s in STAGES)
        self.window = dict((s, 0.0) for s in STAGES)
        self.frames = 0
        self.dropped = 0
        self.resets = 0
        self.start = self.window_start = time.perf_counter()
        self.window_frames = 0

    def drop(self):
        with self.lock:
            self.dropped += 1

    def frame_done(self, times):
        for s in STAGES:
            v = times.get(s, 0.0)
            self.total[s] += v
            self.window[s] += v
        self.frames += 1
        self.window_frames += 1
        if self.frames % self.every == 0:
            now = time.perf_counter()
            fps = self.window_frames / max(now - self.window_start, 1e-9)
            self.line("frames {:5d} | {:6.1f} fps".format(self.frames, fps), self.window, self.window_frames)
            self.window = dict((s, 0.0) for s in STAGES)
            self.window_start, self.window_frames = now, 0

    def line(self, head, sums, n):
        parts = ["{} {:6.1f} ms".format(s, 1000.0 * sums[s] / max(n, 1)) for s in STAGES]
        self.out.write("{} | {} | dropped {}\n".format(head, " | ".join(parts), self.dropped))
        self.out.flush()

    def summary(self):
        seconds = time.perf_counter() - self.start
        infer_ms = 1000.0 * self.total["infer"] / max(self.frames, 1)
        return {"frames": self.frames, "seconds": round(seconds, 3),
                "fps": round(self.frames / seconds, 3) if seconds > 0 else 0.0,
                "stage_ms": dict((s, round(1000.0 * self.total[s] / max(self.frames, 1), 3)) for s in STAGES),
                "infer_fps": round(1000.0 / infer_ms, 3) if infer_ms > 0 else 0.0,
                "dropped": self.dropped, "resets": self.resets}


def _put(q, item, stop, live, stats):
    """Blocking put (files); live: drop the oldest queued frame instead of waiting."""
    if live and item is not _END:
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = q.get_nowait()
                    if old is _END:  # never drop the end marker (cannot happen: it is the last put)
                        q.put_nowait(old)
                    else:
                        stats.drop()
                except queue.Empty:
                    pass
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q, stop):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def model_inputs(cfg, prep, temporal):
    """The list the runtime takes: the frame in its layout, plus the previous alpha for a temporal model."""
    specs = cfg["inputs"]
    first = prep.inputs
    if temporal is None:
        return [first]
    prev = temporal.input_for(prep.cut)
    if len(specs) == 1:  # one 4-channel float input: image and previous alpha concatenated
        return [np.ascontiguousarray(np.concatenate([first, prev.astype(first.dtype)], axis=1))]
    return [first, prev]


def run(cfg, runtime, source, sink, background, live=False, max_frames=None, stats=None):
    """Run until the source ends (or max_frames); returns the Stats. Errors in any thread stop all three and
    are raised here."""
    stats = stats or Stats(cfg.get("report_every", 50))
    hw = tuple(cfg["model_size"])
    specs = cfg["inputs"]
    first_dtype = np.dtype(specs[0]["dtype"])
    layout, color_range = cfg["input_layout"], cfg.get("color_range", "video")
    mirror = bool(cfg.get("mirror", False))
    cut_threshold = float(cfg.get("cut_threshold", pipeline.CUT_THRESHOLD))
    temporal = None
    if int(cfg["in_channels"]) == 4:
        prev_dtype = specs[1]["dtype"] if len(specs) > 1 else "float32"
        temporal = pipeline.Temporal(hw, bool(cfg.get("temporal", True)), prev_dtype,
                                     float(cfg.get("empty_alpha", pipeline.EMPTY_ALPHA)))
    depth = max(1, int(cfg.get("queue_depth", 2)))
    q_in, q_out = queue.Queue(depth), queue.Queue(depth)
    stop = threading.Event()
    errors = []
    clock = time.perf_counter

    def capture():
        try:
            prev_frame, i, policy = None, 0, None
            while not stop.is_set() and (max_frames is None or i < max_frames):
                t0 = clock()
                raw = source.read()
                t1 = clock()
                if raw is None:
                    break
                rgb = source.to_rgb(raw)
                if policy is None:  # 'auto' is decided on the first frame, as `matteconv matte` does
                    policy = pipeline.choose_policy(rgb.shape[:2], hw, cfg.get("policy", "device"))
                prep = pipeline.prepare(i, rgb, hw, mirror, policy)
                prep.cut = pipeline.is_scene_cut(prev_frame, prep.frame, cut_threshold)
                prev_frame = prep.frame
                x = pipeline.encode_input(prep.frame, layout, color_range)
                prep.inputs = x if x.dtype == first_dtype else x.astype(first_dtype)
                prep.times = {"read": t1 - t0, "pre": clock() - t1}
                _put(q_in, prep, stop, live, stats)
                i += 1
        except BaseException as e:  # handed to the main thread
            errors.append(e)
            stop.set()
        finally:
            _put(q_in, _END, stop, False, stats)

    def show():
        try:
            while True:
                got = _get(q_out, stop)
                if got is _END:
                    return
                prep, alpha = got
                t0 = clock()
                view = pipeline.render_view(prep, alpha, background, cfg.get("view", "frame"),
                                            cfg.get("display_size", 640), bool(cfg.get("side_by_side", False)))
                t1 = clock()
                sink.show(view)
                prep.times["post"], prep.times["show"] = t1 - t0, clock() - t1
                stats.frame_done(prep.times)
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=capture, name="capture"), threading.Thread(target=show, name="show")]
    for t in threads:
        t.daemon = True
        t.start()
    try:
        while True:
            prep = _get(q_in, stop)
            if prep is _END:
                break
            inputs = model_inputs(cfg, prep, temporal)
            t0 = clock()
            outs = runtime.infer(inputs)
            prep.times["infer"] = clock() - t0
            alpha = pipeline.alpha_from_output(outs[0], hw)
            if temporal is not None:
                temporal.update(alpha)
            _put(q_out, (prep, alpha), stop, live, stats)
    except BaseException as e:
        errors.append(e)
        stop.set()
    finally:
        _put(q_out, _END, stop, False, stats)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    stats.resets = temporal.resets if temporal is not None else 0
    return stats


def bench_model(cfg, runtime, source, n):
    """Model-only fps: the runtime alone, n times, on the first frame's inputs (no capture, no display)."""
    raw = source.read()
    if raw is None:
        raise pipeline.AppError("the input has no frames to time the model with")
    rgb, hw = source.to_rgb(raw), tuple(cfg["model_size"])
    policy = pipeline.choose_policy(rgb.shape[:2], hw, cfg.get("policy", "device"))
    prep = pipeline.prepare(0, rgb, hw, bool(cfg.get("mirror", False)), policy)
    x = pipeline.encode_input(prep.frame, cfg["input_layout"], cfg.get("color_range", "video"))
    prep.inputs = x.astype(np.dtype(cfg["inputs"][0]["dtype"]))
    temporal = None
    if int(cfg["in_channels"]) == 4:
        specs = cfg["inputs"]
        temporal = pipeline.Temporal(cfg["model_size"], True, specs[1]["dtype"] if len(specs) > 1 else "float32")
    inputs = model_inputs(cfg, prep, temporal)
    runtime.infer(inputs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        runtime.infer(inputs)
    seconds = time.perf_counter() - t0
    return {"frames": n, "seconds": round(seconds, 3), "fps": round(n / seconds, 3) if seconds > 0 else 0.0}


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
