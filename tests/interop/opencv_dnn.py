"""Run an ONNX model in OpenCV DNN, in whatever cv2 this interpreter imports first (the interop test puts the
OpenCV 4.x install on PYTHONPATH). argv: model.onnx inputs.npz outputs.npz; writes one output per input key
and the cv2 version. A child process, so one test run can use OpenCV 4.x beside the venv's 5.x."""
import sys

import cv2
import numpy as np

model, inputs, outputs = sys.argv[1:4]
net = cv2.dnn.readNetFromONNX(model)
with np.load(inputs) as z:
    feeds = {k: z[k] for k in z.files}
out = {}
for key, x in feeds.items():
    net.setInput(x)
    out[key] = net.forward()
np.savez(outputs, cv2_version=np.array(cv2.__version__), **out)
