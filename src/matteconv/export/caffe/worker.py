"""pycaffe worker, run as a child process by runner.py (by file path, so it imports only numpy and caffe).

Caffe reports errors with glog CHECKs that abort the process; here that kills only this worker, and the
parent turns its death plus the log on stderr into a MatteconvError. Protocol on a private copy of stdout
(fd 1 itself is pointed at stderr so nothing Caffe prints can corrupt it): length-prefixed pickles.
"""
import gc
import os
import pickle
import struct
import sys


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _describe(net) -> dict:
    return {
        "inputs": [(name, tuple(net.blobs[name].data.shape)) for name in net.inputs],
        "outputs": list(net.outputs),
        "layers": [(name, layer.type) for name, layer in zip(net._layer_names, net.layers)],
        "tops": {name: list(net.top_names[name]) for name in net._layer_names},
        "shapes": {name: tuple(blob.data.shape) for name, blob in net.blobs.items()},
        "params": {name: [tuple(p.data.shape) for p in ps] for name, ps in net.params.items()},
    }


def main(extra_ops: dict | None = None) -> None:
    """Serve requests until stdin closes. `extra_ops`: op name -> fn(net, request) -> reply, for workers
    that import this one and add their own operations."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    import numpy as np

    import caffe

    caffe.set_mode_cpu()
    net = whole = None  # the Net being run; the Net last loaded whole (run_part takes weights from it)
    store = {}  # run_part: blobs kept between parts
    while True:
        req = _recv(inp)
        if req is None:
            return
        try:
            if req["op"] == "load":
                net = whole = None  # free the previous Net before building the next
                store = {}
                gc.collect()
                if req.get("weights"):
                    net = caffe.Net(req["prototxt"], caffe.TEST, weights=req["weights"])
                else:
                    net = caffe.Net(req["prototxt"], caffe.TEST)
                whole = net
                reply = _describe(net)
            elif req["op"] == "run_part":  # export/caffe/segments.py: some of the loaded Net's layers as a Net
                part = caffe.Net(req["prototxt"], caffe.TEST)
                for name, blobs in part.params.items():  # the weights, copied by layer name from the whole Net
                    for blob, src in zip(blobs, whole.params[name]):
                        blob.data[...] = src.data
                store.update(req.get("inputs", {}))
                for name in req["feeds"]:
                    part.blobs[name].data[...] = store[name]
                part.forward()
                store.update({name: np.array(part.blobs[name].data) for name in req["keep"]})
                part = None  # freed here by its refcount, before the next part is built (a gc.collect() would
                # cost 0.15 s per part with caffe's imports loaded and free nothing more: same peak, measured)
                needed = set(req["needed"])
                store = {k: v for k, v in store.items() if k in needed}
                reply = {"blobs": {k: store[k] for k in req.get("return", ())}}
            elif req["op"] == "run":
                for name, arr in req["inputs"].items():
                    net.blobs[name].data[...] = arr
                net.forward()
                reply = {"outputs": {k: np.array(net.blobs[k].data) for k in net.outputs},
                         "blobs": {k: np.array(net.blobs[k].data) for k in req.get("blobs", ())}}
            elif req["op"] == "net_param":  # the loaded net as Caffe holds it (upgraded: V0/V1 -> layer { })
                import tempfile

                fd, tmp = tempfile.mkstemp(suffix=".caffemodel")
                os.close(fd)
                try:
                    net.save(tmp)
                    with open(tmp, "rb") as fh:
                        reply = {"net": fh.read()}
                finally:
                    os.remove(tmp)
            elif extra_ops and req["op"] in extra_ops:
                reply = extra_ops[req["op"]](net, req)
            else:
                reply = {"error": f"unknown request {req['op']!r}"}
        except Exception as e:  # Python-level errors (bad blob name, shape): reported, worker stays alive
            reply = {"error": f"{type(e).__name__}: {e}"}
        _send(out, reply)


if __name__ == "__main__":
    main()
