"""Run a Caffe model in OpenCV DNN, in whatever cv2 this interpreter imports first (the test puts the OpenCV 4.x
install beside the venv on PYTHONPATH).

    python opencv_caffe_run.py MODEL.prototxt MODEL.caffemodel INPUTS.npz OUTPUTS.npz

Feeds every array of INPUTS.npz (1xCxHxW float32) to the blob `input` with default settings (fusion on, as a
user would) and writes the first output under the same key. Prints the OpenCV version."""
import sys

import cv2
import numpy as np

proto, weights, inputs, outputs = sys.argv[1:5]
net = cv2.dnn.readNetFromCaffe(proto, weights)
results = {}
with np.load(inputs) as z:
    for key in z.files:
        net.setInput(z[key], "input")
        results[key] = net.forward()
np.savez(outputs, **results)
print(cv2.__version__)
