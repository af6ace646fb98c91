# -*- coding: utf-8 -*-
"""pyACL adapter (AscendCL Python API, CANN): every buffer is allocated once, then reused for every frame.

The call sequence follows Ascend/samples inference/modelInference/sampleResnetAIPP/python/src/sampleResnetAIPP.py:
acl.init -> rt.set_device -> rt.create_context -> mdl.load_from_file -> mdl.create_desc/get_desc ->
per input/output: mdl.get_input_size_by_index, rt.malloc, create_data_buffer, mdl.add_dataset_buffer ->
per frame: util.bytes_to_ptr(arr.tobytes()) + rt.memcpy(..., ACL_MEMCPY_HOST_TO_DEVICE) -> mdl.execute ->
rt.memcpy(..., ACL_MEMCPY_DEVICE_TO_HOST) into a host buffer + util.ptr_to_bytes -> np.frombuffer ->
teardown: destroy_data_buffer, mdl.destroy_dataset, mdl.unload, mdl.destroy_desc, rt.free/free_host,
rt.destroy_context, rt.reset_device, acl.finalize.
bytes_to_ptr / ptr_to_bytes replace the deprecated numpy_to_ptr / ptr_to_numpy (hiascend CANN "aclpythondevg"
0052/0054). The sample allocates a host buffer per frame; here it is allocated once (no allocation per frame).
"""
import os

import numpy as np

import acl
from pipeline import AppError, check_inputs

ACL_SUCCESS = 0
ACL_MEM_MALLOC_HUGE_FIRST = 0
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2


def _ok(ret, what):
    if ret != ACL_SUCCESS:
        raise AppError("{} failed with ACL error {}".format(what, ret))


class Runtime(object):
    def __init__(self, cfg, app_dir):
        self.cfg = cfg
        self.device_id = int(cfg.get("device_id", 0))
        self.context = self.model_id = self.desc = None
        self.in_buffers, self.out_buffers, self.host_out = [], [], []
        self.in_dataset = self.out_dataset = None
        _ok(acl.init(), "acl.init")
        self.initialised = True
        _ok(acl.rt.set_device(self.device_id), "acl.rt.set_device")
        self.context, ret = acl.rt.create_context(self.device_id)
        _ok(ret, "acl.rt.create_context")
        path = os.path.join(app_dir, cfg["model"])
        self.model_id, ret = acl.mdl.load_from_file(path)
        _ok(ret, "acl.mdl.load_from_file({})".format(path))
        self.desc = acl.mdl.create_desc()
        _ok(acl.mdl.get_desc(self.desc, self.model_id), "acl.mdl.get_desc")
        n_in, n_out = acl.mdl.get_num_inputs(self.desc), acl.mdl.get_num_outputs(self.desc)
        if n_in != len(cfg["inputs"]) or n_out < 1:
            raise AppError("{}: the model has {} input(s) and {} output(s), the app config expects {} input(s)"
                           .format(path, n_in, n_out, len(cfg["inputs"])))
        self.in_dataset = acl.mdl.create_dataset()
        for i, spec in enumerate(cfg["inputs"]):
            size = acl.mdl.get_input_size_by_index(self.desc, i)
            if size != int(spec["bytes"]):
                raise AppError("{}: input {} ({!r}) takes {} bytes, the app config says {}".format(
                    path, i, spec["name"], size, spec["bytes"]))
            self.in_buffers.append(self._device_buffer(self.in_dataset, size))
        self.out_dataset = acl.mdl.create_dataset()
        for i in range(n_out):
            size = acl.mdl.get_output_size_by_index(self.desc, i)
            self.out_buffers.append(self._device_buffer(self.out_dataset, size))
            host, ret = acl.rt.malloc_host(size)
            _ok(ret, "acl.rt.malloc_host")
            self.host_out.append((host, size))
        self.out_dtypes = [np.dtype(o["dtype"]) for o in cfg["outputs"]]

    def _device_buffer(self, dataset, size):
        ptr, ret = acl.rt.malloc(size, ACL_MEM_MALLOC_HUGE_FIRST)
        _ok(ret, "acl.rt.malloc")
        buf = acl.create_data_buffer(ptr, size)
        _, ret = acl.mdl.add_dataset_buffer(dataset, buf)
        _ok(ret, "acl.mdl.add_dataset_buffer")
        return ptr, size, buf

    def infer(self, inputs):
        check_inputs(self.cfg["inputs"], inputs)
        for (dev, size, _), a in zip(self.in_buffers, inputs):
            data = a.tobytes()  # keep a reference until the copy is done: bytes_to_ptr does not own it
            _ok(acl.rt.memcpy(dev, size, acl.util.bytes_to_ptr(data), len(data), ACL_MEMCPY_HOST_TO_DEVICE),
                "acl.rt.memcpy (host to device)")
        _ok(acl.mdl.execute(self.model_id, self.in_dataset, self.out_dataset), "acl.mdl.execute")
        outs = []
        for i, ((dev, size, _), (host, _)) in enumerate(zip(self.out_buffers, self.host_out)):
            _ok(acl.rt.memcpy(host, size, dev, size, ACL_MEMCPY_DEVICE_TO_HOST), "acl.rt.memcpy (device to host)")
            dtype = self.out_dtypes[i] if i < len(self.out_dtypes) else np.dtype("float32")
            outs.append(np.frombuffer(acl.util.ptr_to_bytes(host, size), dtype=dtype))
        return outs

    def open_source(self, override=None):
        from frames_opencv import OpenCVSource

        return OpenCVSource(override if override is not None else self.cfg.get("camera", 0))

    def open_sink(self, override=None):
        from frames_opencv import OpenCVSink

        return OpenCVSink(override or self.cfg.get("output", "matted.mp4"))

    def close(self):
        """Free in the reverse order of creation (the sample's release_resource)."""
        if not getattr(self, "initialised", False):
            return
        self.initialised = False
        for dataset, buffers in ((self.in_dataset, self.in_buffers), (self.out_dataset, self.out_buffers)):
            for ptr, _, buf in buffers:
                acl.destroy_data_buffer(buf)
                acl.rt.free(ptr)
            if dataset is not None:
                acl.mdl.destroy_dataset(dataset)
        for host, _ in self.host_out:
            acl.rt.free_host(host)
        if self.model_id is not None:
            acl.mdl.unload(self.model_id)
        if self.desc is not None:
            acl.mdl.destroy_desc(self.desc)
        if self.context is not None:
            acl.rt.destroy_context(self.context)
        acl.rt.reset_device(self.device_id)
        acl.finalize()
