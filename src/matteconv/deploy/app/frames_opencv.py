# -*- coding: utf-8 -*-
"""Frames in and out with OpenCV, for the boards where the app drives the camera itself (pyACL, ais_bench).

Atlas 200I DK A2: a USB camera through cv2.VideoCapture(0) gives BGR frames, and results are written with
cv2.VideoWriter (hiascend Atlas200IDKA2DeveloperKit 23.0.RC2, "USB camera video" in Getting Started with
Application Development). A folder of images also works as input (in name order) and as output (PNG frames,
lossless: what the host-side parity check reads).
"""
import os

import cv2
import numpy as np

from pipeline import AppError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class OpenCVSource(object):
    """A camera index, a video file or a folder of images; read() gives BGR uint8, None at the end."""

    def __init__(self, spec):
        self.files, self.cap, self.fps = None, None, 25.0
        text = str(spec)
        if os.path.isdir(text):
            self.files = sorted(os.path.join(text, f) for f in os.listdir(text)
                                if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise AppError("{}: no images in this folder".format(text))
            return
        if not text.isdigit() and not os.path.isfile(text):
            raise AppError("{}: input not found".format(text))
        self.cap = cv2.VideoCapture(int(text) if text.isdigit() else text)
        if not self.cap.isOpened():
            raise AppError("{}: OpenCV cannot open this camera or video".format(text))
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        if fps and 0 < fps < 1000:
            self.fps = float(fps)

    def read(self):
        if self.files is not None:
            if not self.files:
                return None
            path = self.files.pop(0)
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise AppError("{}: not a readable image".format(path))
            return img
        ok, bgr = self.cap.read()
        return bgr if ok else None

    @staticmethod
    def to_rgb(raw):
        return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)

    def close(self):
        if self.cap is not None:
            self.cap.release()


class OpenCVSink(object):
    """`.mp4` (mp4v) or `.avi` (MJPG) video, or a folder of PNG frames; show() takes RGB uint8."""

    def __init__(self, path, fps=25.0):
        self.path, self.fps, self.writer, self.n = str(path), fps, None, 0
        self.suffix = os.path.splitext(self.path)[1].lower()
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise AppError("{}: output folder {} does not exist".format(self.path, parent))
        if self.suffix not in CODECS:
            if os.path.exists(self.path) and (not os.path.isdir(self.path) or os.listdir(self.path)):
                raise AppError("{}: output exists and is not an empty folder".format(self.path))
            if not os.path.isdir(self.path):
                os.mkdir(self.path)

    def show(self, rgb):
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        if self.suffix not in CODECS:
            cv2.imwrite(os.path.join(self.path, "frame_{:06d}.png".format(self.n)), bgr)
        else:
            if self.writer is None:
                h, w = bgr.shape[:2]
                self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*CODECS[self.suffix]), self.fps, (w, h))
                if not self.writer.isOpened():
                    raise AppError("{}: OpenCV cannot write {} video here".format(self.path, CODECS[self.suffix]))
            self.writer.write(bgr)
        self.n += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()
            self.writer = None
