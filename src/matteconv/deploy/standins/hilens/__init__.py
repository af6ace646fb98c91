"""Stand-in for the HiLens Framework Python module (`import hilens`), to run a generated skill on the host.

Behaves as the developer guide documents the device (huaweicloudDocs/hilens, 开发指南, @30a5c81; see
shared device-app-apis.md section 1): init returns 0; VideoCapture gives NV21 (H*3/2, W) uint8 frames for an
mp4 or the built-in camera ($MATTECONV_SIM_CAMERA on the host) and raises at the end of a file; Display.show
accepts NV21 only, at least 128x128, and the first frame fixes the size ($MATTECONV_SIM_DISPLAY records it);
Model(path).infer takes a list of uint8 or float32 arrays (else ValueError), returns a list of float arrays,
and returns the integer 17 after logging the model's and "your input" sizes when a byte count differs (FAQ
hiLens_03_0064); cvt_color returns an empty array on failure. The .om runs as the model it was built from
behind the emulated AIPP (matteconv.deploy.device).
"""
import os
import sys

import numpy as np

from matteconv.deploy import simhost

HDMI, RTMP, H264_FILE = 0, 1, 2
RGB2YUV_NV12, RGB2YUV_NV21, BGR2YUV_NV12, BGR2YUV_NV21 = 0, 1, 2, 3
TRACE, DEBUG, INFO, WARNING, ERROR, FATAL = range(6)
SIZE_MISMATCH = 17

STATS = {"init": 0, "terminate": 0, "infer": 0, "infer_size_mismatch": 0, "frames_read": 0, "frames_shown": 0,
         "display_size": None, "camera_ms": 0.0, "display_ms": 0.0, "offclock": simhost.offclock()}
simhost.stats_writer("hilens", STATS)
_level = [INFO]


class CreateError(Exception):
    """What the framework raises when a camera, display or model cannot be created."""


def _log(level, name, msg):
    if level >= _level[0]:
        sys.stderr.write("[hilens {}] {}\n".format(name, msg))


def set_log_level(level):
    _level[0] = level
    return 0


def trace(msg):
    _log(TRACE, "TRACE", msg)


def debug(msg):
    _log(DEBUG, "DEBUG", msg)


def info(msg):
    _log(INFO, "INFO", msg)


def warning(msg):
    _log(WARNING, "WARNING", msg)


def error(msg):
    _log(ERROR, "ERROR", msg)


def fatal(msg):
    _log(FATAL, "FATAL", msg)


def init(verify):
    if not isinstance(verify, str) or not verify:
        return 1
    STATS["init"] += 1
    return 0


def terminate():
    STATS["terminate"] += 1
    return 0


def get_workspace_path():
    return os.path.join(os.getcwd(), "data") + os.sep


def get_model_dir():
    return os.getcwd() + os.sep


def get_skill_config():
    return None


class VideoCapture(object):
    """Frames of a file as the camera gives them: NV21 (H*3/2, W). The decoding and NV21 encoding it takes to
    emulate the camera is counted in STATS["camera_ms"]; off the clock (simhost.offclock) all of it happens here,
    before the app's first read."""

    def __init__(self, camera=None, width=None, height=None):
        if camera is None:
            camera = os.environ.get(simhost.CAMERA_ENV)
            if not camera:
                raise CreateError("no built-in camera on the host: set {} to a video file".format(simhost.CAMERA_ENV))
        if isinstance(camera, int) or not os.path.exists(str(camera)):
            raise CreateError("camera {!r}: the host stand-in reads mp4 files and image folders only".format(camera))
        self._timer = simhost.Timer(STATS, "camera_ms")
        self._frames = self._camera_frames(simhost.rgb_frames(camera))
        if STATS["offclock"]:
            with self._timer:
                self._frames = iter(list(self._frames))
        self.width = self.height = 0

    def _camera_frames(self, rgb_frames):
        from matteconv.aipp import rgb_to_nv21

        for rgb in rgb_frames:
            h, w = rgb.shape[:2]
            yield rgb_to_nv21(rgb).reshape(h * 3 // 2, w)

    def read(self):
        try:
            with self._timer:
                frame = next(self._frames)
        except StopIteration:
            raise RuntimeError("VideoCapture.read: no more frames") from None
        except Exception as e:  # a damaged frame of the input (matteconv's reader names it): the app sees the
            # end of the stream, as on the device, and the simulation reports the cause (deploy/simulate.py)
            STATS["camera_error"] = str(e)
            raise RuntimeError("VideoCapture.read: {}".format(e)) from None
        self.height, self.width = frame.shape[0] * 2 // 3, frame.shape[1]
        STATS["frames_read"] += 1
        return frame


class Display(object):
    def __init__(self, type, path=None):
        if type not in (HDMI, RTMP, H264_FILE):
            raise CreateError("unknown display type {!r}".format(type))
        if type == RTMP and not str(path or "").startswith("rtmp://"):
            raise CreateError("RTMP display needs an rtmp:// url")
        target = os.environ.get(simhost.DISPLAY_ENV)
        self._sink = simhost.RecordingSink(target, convert=_nv21_to_rgb, defer=STATS["offclock"],
                                           timer=simhost.Timer(STATS, "display_ms")) if target else None
        self._size = None

    def show(self, frame):
        """What the HDMI output shows is recorded (decoded from NV21 and encoded: the emulation, counted in
        STATS["display_ms"]; off the clock, at exit)."""
        f = np.asarray(frame)
        if f.dtype != np.uint8 or f.ndim != 2 or f.shape[0] % 3 or f.shape[1] % 2:
            raise ValueError("Display.show takes an NV21 frame (uint8, shape (H*3/2, W)), got {} {}".format(
                f.dtype, f.shape))
        size = (f.shape[0] * 2 // 3, f.shape[1])
        if min(size) < 128:
            raise ValueError("Display.show: {}x{} is smaller than 128x128".format(size[1], size[0]))
        if self._size is None:
            self._size = STATS["display_size"] = size
        elif size != self._size:
            raise ValueError("Display.show: {}x{} after a first frame of {}x{} (the first frame fixes the size)"
                             .format(size[1], size[0], self._size[1], self._size[0]))
        STATS["frames_shown"] += 1
        if self._sink is not None:
            self._sink.write(f)


def _nv21_to_rgb(nv21):
    import cv2

    return cv2.cvtColor(nv21, cv2.COLOR_YUV2RGB_NV21)


def cvt_color(src, code):
    from matteconv.aipp import rgb_to_nv12, rgb_to_nv21

    img = np.asarray(src)
    if code not in (RGB2YUV_NV12, RGB2YUV_NV21, BGR2YUV_NV12, BGR2YUV_NV21) or img.ndim != 3 or \
            img.dtype != np.uint8 or img.shape[0] % 2 or img.shape[1] % 2:
        return np.array([], np.uint8)
    if code in (BGR2YUV_NV12, BGR2YUV_NV21):
        img = img[..., ::-1]
    nv = (rgb_to_nv21 if code in (RGB2YUV_NV21, BGR2YUV_NV21) else rgb_to_nv12)(img)
    return nv.reshape(img.shape[0] * 3 // 2, img.shape[1])


class Model(object):
    def __init__(self, filepath):
        if not os.path.isfile(str(filepath)):
            raise CreateError("0x1013011: model file {} not found".format(filepath))
        self._device = simhost.device_model(filepath)

    def infer(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("Model.infer takes a list of numpy arrays")
        arrays = [np.asarray(a) for a in inputs]
        for a in arrays:
            if a.dtype not in (np.uint8, np.float32):
                raise ValueError("Model.infer inputs must be uint8 or float32, got {}".format(a.dtype))
        STATS["infer"] += 1
        specs = self._device.inputs
        if len(arrays) != len(specs) or any(a.nbytes != s.nbytes for a, s in zip(arrays, specs)):
            STATS["infer_size_mismatch"] += 1
            for s in specs:
                n, c, h, w = s.shape
                error("model input {}: n {} c {} h {} w {} size {}".format(s.name, n, c, h, w, s.nbytes))
            error("your input size: {}".format(", ".join(str(a.nbytes) for a in arrays)))
            return SIZE_MISMATCH
        return [o.astype(np.float32).reshape(-1) for o in self._device.run(arrays)]
