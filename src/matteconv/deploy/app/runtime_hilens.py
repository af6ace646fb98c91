# -*- coding: utf-8 -*-
"""HiLens Framework adapter (HiLens Kit: the skill cannot use CANN directly, only this framework).

Every call is as documented in huaweicloudDocs/hilens, 开发指南 (developer guide), @30a5c81:
- hilens.init(check_value) -> 0 on success; the value must equal the skill's 校验值 (初始化HiLens-Framework.md)
- hilens.VideoCapture() built-in camera / (name or rtsp url) / 0 for UVC / mp4 path (视频采集器.md);
  read() gives NV21 uint8 of shape (H*3/2, W) for the camera, IPC and mp4, BGR for UVC (读取摄像头视频帧.md)
- hilens.Display(hilens.HDMI | hilens.RTMP, url | hilens.H264_FILE, path); show() takes NV21 only and the first
  frame fixes the size (构造一个用于输出的显示器.md, 输出一帧图片.md)
- hilens.cvt_color(img, hilens.RGB2YUV_NV21) -> NV21, an empty array on failure (转换图片颜色格式.md)
- hilens.Model(path).infer([flat uint8 or float32 arrays]) -> list of float arrays, or the integer 17 when an
  input's size does not match the model (创建模型实例.md, 模型推理.md, 示例-模型管理.md; FAQ hiLens_03_0064)
- hilens.terminate() (释放HiLens-Framework资源.md)
"""
import os

import cv2
import numpy as np

import hilens
from pipeline import AppError, check_inputs


class Runtime(object):
    def __init__(self, cfg, app_dir):
        self.cfg = cfg
        ret = hilens.init(str(cfg.get("hilens_check_value", "matteconv")))
        if ret != 0:
            raise AppError("hilens.init returned {}: is hilens_check_value the skill's check value?".format(ret))
        self.initialised = True
        for spec in cfg["inputs"]:
            if spec["dtype"] not in ("uint8", "float32"):
                raise AppError("input {!r} is {}: HiLens Model.infer takes only uint8 or float32".format(
                    spec["name"], spec["dtype"]))
        path = os.path.join(app_dir, cfg["model"])
        try:
            self.model = hilens.Model(path)
        except Exception as e:  # hilens.CreateError (e.g. 0x1013011: bad path)
            raise AppError("{}: hilens.Model cannot load it: {}".format(path, e))

    def infer(self, inputs):
        check_inputs(self.cfg["inputs"], inputs)
        outs = self.model.infer([np.ascontiguousarray(a).reshape(-1) for a in inputs])
        if isinstance(outs, int):  # 17: input size mismatch (the framework's log has the model's n,c,h,w)
            raise AppError("hilens Model.infer returned {} (input size mismatch: see the HiLens log)".format(outs))
        return outs

    def open_source(self, override=None):
        spec = override if override is not None else self.cfg.get("camera")
        if spec is None:
            cap = hilens.VideoCapture()
        else:
            cap = hilens.VideoCapture(int(spec) if str(spec).isdigit() else str(spec))
        return HilensSource(cap)

    def open_sink(self, override=None):
        target = str(override or self.cfg.get("display") or "hdmi")
        if target.lower() == "hdmi":
            return HilensSink(hilens.Display(hilens.HDMI))
        if target.startswith("rtmp://"):
            return HilensSink(hilens.Display(hilens.RTMP, target))
        return HilensSink(hilens.Display(hilens.H264_FILE, target))

    def close(self):
        if getattr(self, "initialised", False):
            self.initialised = False
            hilens.terminate()


class HilensSource(object):
    def __init__(self, cap):
        self.cap = cap

    def read(self):
        try:
            frame = self.cap.read()
        except Exception:  # the end of an mp4 input (the seed's demo stops on the exception too)
            return None
        if frame is None or np.asarray(frame).size == 0:
            return None
        return frame

    @staticmethod
    def to_rgb(raw):
        if raw.ndim == 2:  # NV21 (H*3/2, W): built-in camera, IPC, mp4
            return cv2.cvtColor(raw, cv2.COLOR_YUV2RGB_NV21)
        return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)  # UVC camera

    def close(self):
        pass


class HilensSink(object):
    def __init__(self, display):
        self.display = display

    def show(self, rgb):
        h, w = rgb.shape[:2]
        rgb = np.ascontiguousarray(rgb[:h - h % 2, :w - w % 2])  # NV21 needs even sides
        nv21 = hilens.cvt_color(rgb, hilens.RGB2YUV_NV21)
        if nv21 is None or np.asarray(nv21).size == 0:
            raise AppError("hilens.cvt_color could not convert a {}x{} frame to NV21".format(w, h))
        self.display.show(nv21)

    def close(self):
        pass
