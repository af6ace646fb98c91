"""Exporters: ONNX (export/onnx.py) and Caffe (export/caffe/)."""
