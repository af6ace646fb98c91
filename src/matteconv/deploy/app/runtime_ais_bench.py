# -*- coding: utf-8 -*-
"""ais_bench adapter (ais_bench.infer.interface.InferSession, from Ascend ait / ais_bench).

API as in ait components/benchmark/ais_bench/infer/interface.py (mirror mjlovesz/sync-ait @01a6ad8c):
InferSession(device_id, model_path); get_inputs() / get_outputs() -> descriptors with name, datatype, shape,
size, realsize; infer(feeds, mode='static') -> list of numpy arrays in the .om's output order;
free_resource(). Feeds go to the device as raw bytes: the C++ side rejects a wrong byte count ("Check i:.. in
size:.. needsize:.. not match", ModelInferenceProcessor.cpp) but never checks the dtype, so the app checks both.
"""
import os

from ais_bench.infer.interface import InferSession

from pipeline import AppError, check_inputs


class Runtime(object):
    def __init__(self, cfg, app_dir):
        self.cfg = cfg
        path = os.path.join(app_dir, cfg["model"])
        try:
            self.session = InferSession(int(cfg.get("device_id", 0)), path)
        except Exception as e:
            raise AppError("{}: ais_bench cannot load it: {}".format(path, e))
        descs = self.session.get_inputs()
        if len(descs) != len(cfg["inputs"]):
            raise AppError("{}: the model has {} input(s), the app config expects {}".format(
                path, len(descs), len(cfg["inputs"])))
        for d, spec in zip(descs, cfg["inputs"]):
            if int(d.realsize) != int(spec["bytes"]):
                raise AppError("{}: input {!r} takes {} bytes, the app config says {}".format(
                    path, d.name, d.realsize, spec["bytes"]))

    def infer(self, inputs):
        check_inputs(self.cfg["inputs"], inputs)
        return self.session.infer(inputs, mode="static")

    def open_source(self, override=None):
        from frames_opencv import OpenCVSource

        return OpenCVSource(override if override is not None else self.cfg.get("camera", 0))

    def open_sink(self, override=None):
        from frames_opencv import OpenCVSink

        return OpenCVSink(override or self.cfg.get("output", "matted.mp4"))

    def close(self):
        session, self.session = getattr(self, "session", None), None
        if session is not None:
            session.free_resource()
