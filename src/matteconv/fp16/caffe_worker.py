"""The pycaffe worker (export/caffe/worker.py) plus one op, `run_fp16`: the net run layer by layer under the device
model (device.DEVICE_MODEL). Run as a child process by file path, like worker.py, so it imports only numpy and
caffe (glog CHECKs abort only this process).

run_fp16: parameters rounded to fp16 once; inputs rounded; each layer computed by pycaffe in float32 from the
fp16 blobs (Convolution/Deconvolution/InnerProduct thus accumulate in fp32; MVN and Reduction compute in fp32)
and its tops rounded to fp16; Power layers computed in numpy float16 instead (the only fp16 kernel on Ascend310).
"""
import importlib.util
import os
import sys

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "export", "caffe", "worker.py")
_rounded = set()  # ids of nets whose parameters are already on the fp16 grid
# Layers whose outputs are fp16 values whenever their inputs are (they select, clamp at 0 and 6, or move values):
# rounding them again would change nothing.
ON_GRID = {"ReLU", "ReLU6", "Concat", "Slice", "Split", "Reshape", "Flatten"}


def _base():
    spec = importlib.util.spec_from_file_location("matteconv_caffe_worker", _WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_fp16(net, req, compute=None):
    """`compute(i, lname, layer)`: an optional hook that computes layer i itself (returns True) or leaves it to
    the fp16 device model (False): the INT8 worker (int8/caffe_worker.py) computes its quantized layers so."""
    import numpy as np

    def r16(a):
        """In place, to the fp16 grid (one half-size temporary: these blobs are large)."""
        with np.errstate(over="ignore"):
            a[...] = a.astype(np.float16)

    if id(net) not in _rounded:
        for params in net.params.values():
            for p in params:
                r16(p.data)
        _rounded.add(id(net))
    for name, arr in req["inputs"].items():
        net.blobs[name].data[...] = arr
        r16(net.blobs[name].data)
    powers = req.get("power", {})  # layer name -> (power, scale, shift)
    for i, (lname, layer) in enumerate(zip(net._layer_names, net.layers)):
        if layer.type in ("Input", "Data", "DummyData"):
            continue
        if compute is not None and compute(i, lname, layer):
            pass
        elif layer.type == "Power":
            power, scale, shift = (np.float16(v) for v in powers[lname])
            x = net.blobs[net.bottom_names[lname][0]].data.astype(np.float16)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                y = (shift + scale * x) ** power
            net.blobs[net.top_names[lname][0]].data[...] = y.astype(np.float32)
        else:
            net._forward(i, i)
        if layer.type in ON_GRID:
            continue
        for top in net.top_names[lname]:
            r16(net.blobs[top].data)
    return {"outputs": {k: np.array(net.blobs[k].data) for k in net.outputs},
            "blobs": {k: np.array(net.blobs[k].data) for k in req.get("blobs", ())}}


if __name__ == "__main__":
    _base().main({"run_fp16": run_fp16})
