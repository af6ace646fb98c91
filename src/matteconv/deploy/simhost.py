"""What the stand-in device modules (standins/hilens, acl, ais_bench) share on the host: the emulated .om, frames
from a file as a camera would give them, a display that records what it is shown, and call statistics written
at exit for `matteconv deploy --simulate` (and the tests) to read.

Environment (set by `deploy.simulate`):
  MATTECONV_SIM_CAMERA   video file or folder of images that stands in for the built-in camera
  MATTECONV_SIM_DISPLAY  where the HDMI display's frames go: .mp4/.avi, or a folder of PNG frames (lossless)
  MATTECONV_SIM_STATS    folder: each stand-in writes NAME.json there when the app exits
"""
from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

import numpy as np

STANDINS = Path(__file__).with_name("standins")
CAMERA_ENV, DISPLAY_ENV, STATS_ENV = "MATTECONV_SIM_CAMERA", "MATTECONV_SIM_DISPLAY", "MATTECONV_SIM_STATS"


def device_model(om: str | os.PathLike):
    """The emulated .om (raises MatteconvError with one line when it cannot be)."""
    from .device import DeviceModel

    return DeviceModel(om)


def rgb_frames(path: str | os.PathLike):
    """RGB uint8 frames of a video file, an image or a folder of images (matteconv's own reader)."""
    from ..video import open_source

    return open_source(path).frames()


class RecordingSink:
    """Frames shown on the stand-in display, written as matteconv writes outputs (atomically, on close)."""

    def __init__(self, target: str | os.PathLike, fps: float = 25.0):
        from ..video import open_sink

        self.sink = open_sink(target, "video", fps)
        self.closed = False
        atexit.register(self.close)

    def write(self, rgb: np.ndarray) -> None:
        self.sink.write(rgb)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sink.commit()
            except Exception:  # nothing shown: leave nothing behind
                self.sink.abort()


def stats_writer(name: str, stats: dict) -> None:
    """Write `stats` (updated in place by the stand-in) as NAME.json in $MATTECONV_SIM_STATS at exit."""
    folder = os.environ.get(STATS_ENV)
    if not folder:
        return

    def write():
        Path(folder, f"{name}.json").write_text(json.dumps(stats, indent=1, default=str) + "\n")

    atexit.register(write)
