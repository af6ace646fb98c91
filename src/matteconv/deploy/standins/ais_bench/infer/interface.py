"""Stand-in for `ais_bench.infer.interface` (Ascend ait / ais_bench), to run a generated app on the host.

InferSession(device_id, model_path, acl_json_path=None, debug=False, loop=1); get_inputs()/get_outputs() give
descriptors (name, datatype, format, shape, size, realsize); infer(feeds, mode='static') takes numpy arrays in
the .om's input order and returns numpy arrays typed as the .om's outputs. As the real C++ side does
(ModelInferenceProcessor.cpp), a feed's byte count must equal the input's realsize ("Check i:.. in size:..
needsize:.. not match") and its dtype is never checked: the bytes are taken as they are.
"""
import numpy as np

from matteconv.deploy import simhost

STATS = {"sessions": 0, "infer": 0, "size_rejected": 0, "freed": 0}
simhost.stats_writer("ais_bench", STATS)


class dtype(object):
    """aclruntime's dtype enum prints as dtype.<name>."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return "dtype." + self.name

    __repr__ = __str__


class tensor_desc(object):
    def __init__(self, t):
        self.name, self.datatype, self.format = t.name, dtype(t.dtype), 0
        self.shape, self.size, self.realsize = list(t.shape), t.nbytes, t.nbytes


class InferSession(object):
    def __init__(self, device_id, model_path, acl_json_path=None, debug=False, loop=1):
        if not isinstance(device_id, int) or device_id < 0:
            raise RuntimeError("device_id must be a non-negative int")
        self._model = simhost.device_model(model_path)
        self._freed = False
        STATS["sessions"] += 1

    def get_inputs(self):
        return [tensor_desc(t) for t in self._model.inputs]

    def get_outputs(self):
        return [tensor_desc(t) for t in self._model.outputs]

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        if self._freed:
            raise RuntimeError("session resources were freed")
        if mode != "static":
            raise RuntimeError("the stand-in runs static shapes only")
        specs = self._model.inputs
        if len(feeds) != len(specs):
            raise RuntimeError("feeds count {} not equal to model inputs {}".format(len(feeds), len(specs)))
        raw = []
        for i, (f, t) in enumerate(zip(feeds, specs)):
            data = np.ascontiguousarray(f).tobytes()
            if len(data) != t.nbytes:
                STATS["size_rejected"] += 1
                raise RuntimeError("Check i:{} in size:{} needsize:{} not match".format(i, len(data), t.nbytes))
            raw.append(np.frombuffer(data, np.uint8))
        STATS["infer"] += 1
        return self._model.run(raw)

    def free_resource(self):
        if not self._freed:
            self._freed = True
            STATS["freed"] += 1

    def finalize(self):
        self.free_resource()

    def sumary(self):
        return {"infer": STATS["infer"]}
