"""The fp16 pycaffe worker (fp16/caffe_worker.py) plus the ops of the INT8 device model on a Caffe net
(rules.DEVICE_MODEL_INT8). Run as a child process by file path, like the others, so it imports only numpy and
caffe.

params        the float32 parameters of the named layers, as the caffemodel holds them (call before any run_*:
              run_fp16 rounds the net's parameters to fp16 in place)
layer_inputs  a float32 forward (what AMCT calibrates on) layer by layer, returning the first bottom of each
              named layer as that layer reads it (robust to in-place layers and Caffe's Split blobs)
set_int8      per layer: (scale_d, offset, [weight, bias]) with the deploy weight and bias (int8/emulate.py
              deploy_params, computed by the parent)
run_int8      run_fp16 in which each layer of `int8` reads its bottom quantize-dequantized,
              (clip(round_half_even(x / scale_d) + offset, -128, 127) - offset) * scale_d in float32, and computes
              in float32 with its deploy parameters; its top is then rounded to fp16 like every other layer's.
              Bottom and parameters are put back afterwards, so any subset of layers can be INT8 from run to run.
"""
import importlib.util
import os

_FP16 = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fp16", "caffe_worker.py")
_int8 = {}  # layer -> (scale_d, offset, [deploy params])


def _fp16():
    spec = importlib.util.spec_from_file_location("matteconv_caffe_fp16_worker", _FP16)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FP16 = _fp16()


def params(net, req):
    import numpy as np

    return {"params": {n: [np.array(p.data) for p in net.params[n]] for n in req["layers"]}}


def layer_inputs(net, req):
    import numpy as np

    want = set(req["layers"])
    for name, arr in req["inputs"].items():
        net.blobs[name].data[...] = arr
    got = {}
    for i, lname in enumerate(net._layer_names):
        if lname in want:
            got[lname] = np.array(net.blobs[net.bottom_names[lname][0]].data)
        net._forward(i, i)
    return {"inputs": got}


def set_int8(net, req):
    _int8.clear()
    _int8.update(req["layers"])
    return {"layers": sorted(_int8)}


def run_int8(net, req):
    import numpy as np

    active = set(req["int8"])
    unknown = active - set(_int8)
    if unknown:
        return {"error": f"no INT8 parameters for layer(s) {sorted(unknown)[:3]} (set_int8 first)"}

    def compute(i, lname, layer):
        if lname not in active:
            return False
        scale, offset, qparams = _int8[lname]
        bottom = net.blobs[net.bottom_names[lname][0]].data
        saved_x = bottom.copy()
        s = np.float32(scale)
        q = np.clip(np.rint(bottom / s) + np.float32(offset), -128, 127).astype(np.float32)
        bottom[...] = (q - np.float32(offset)) * s
        blobs = net.params[lname]
        saved_p = [np.array(p.data) for p in blobs]
        for p, v in zip(blobs, qparams):
            p.data[...] = v
        net._forward(i, i)
        for p, v in zip(blobs, saved_p):
            p.data[...] = v
        bottom[...] = saved_x
        return True

    return FP16.run_fp16(net, req, compute)


if __name__ == "__main__":
    FP16._base().main({"run_fp16": FP16.run_fp16, "run_int8": run_int8, "params": params,
                       "layer_inputs": layer_inputs, "set_int8": set_int8})
