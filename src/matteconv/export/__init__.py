"""Exporters: ONNX (export/onnx/: the exporter, graph helpers and passes) and Caffe (export/caffe/)."""
