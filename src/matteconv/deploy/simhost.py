"""What the stand-in device modules (standins/hilens, acl, ais_bench) share on the host: the emulated .om, frames
from a file as a camera would give them, a display that records what it is shown, and call statistics written
at exit for `matteconv deploy --simulate` (and the tests) to read.

Environment (set by `deploy.simulate`):
  MATTECONV_SIM_CAMERA   video file or folder of images that stands in for the built-in camera
  MATTECONV_SIM_DISPLAY  where the HDMI display's frames go: .mp4/.avi, or a folder of PNG frames (lossless)
  MATTECONV_SIM_STATS    folder: each stand-in writes NAME.json there when the app exits
  MATTECONV_SIM_OFFCLOCK "1": emulate the board's hardware off the app's clock, for benchmarks: the camera
                         decodes the whole input before the app's first read, the display keeps what it is shown
                         and encodes it at exit (memory: every frame of the clip). The time the emulation takes
                         is counted either way (stats "camera_ms"/"display_ms"), to report beside the app's.
"""
from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

import numpy as np

STANDINS = Path(__file__).with_name("standins")
CAMERA_ENV, DISPLAY_ENV, STATS_ENV = "MATTECONV_SIM_CAMERA", "MATTECONV_SIM_DISPLAY", "MATTECONV_SIM_STATS"
OFFCLOCK_ENV = "MATTECONV_SIM_OFFCLOCK"


def offclock() -> bool:
    """Whether the stand-ins emulate camera and display off the app's clock ($MATTECONV_SIM_OFFCLOCK=1)."""
    return os.environ.get(OFFCLOCK_ENV) == "1"


class Timer:
    """Milliseconds a stand-in spends emulating hardware, added to stats[key] (a context manager)."""

    def __init__(self, stats: dict, key: str):
        self.stats, self.key = stats, key
        stats.setdefault(key, 0.0)

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.stats[self.key] += 1000.0 * (time.perf_counter() - self.t0)


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

    def __init__(self, target: str | os.PathLike, fps: float = 25.0, convert=None, defer: bool = False,
                 timer: Timer | None = None):
        """`convert(frame) -> RGB` turns what is shown into RGB (e.g. NV21 decoding); `defer`: keep the frames
        and convert/write them on close; `timer` counts the time spent converting and writing."""
        from ..video import open_sink

        self.sink = open_sink(target, "video", fps)
        self.convert, self.defer, self.timer, self.kept = convert, defer, timer, []
        self.closed = False
        atexit.register(self.close)

    def write(self, frame: np.ndarray) -> None:
        if self.defer:
            self.kept.append(np.array(frame, copy=True))
            return
        self._write(frame)

    def _write(self, frame: np.ndarray) -> None:
        if self.timer is None:
            self.sink.write(self.convert(frame) if self.convert else frame)
            return
        with self.timer:
            self.sink.write(self.convert(frame) if self.convert else frame)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                for frame in self.kept:
                    self._write(frame)
                self.kept = []
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
