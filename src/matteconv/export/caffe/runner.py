"""CaffeBackend: a prototxt + caffemodel run by pycaffe in a child process (worker.py).

Why a child: Caffe reports errors with glog CHECKs that abort the whole process. Here only the worker dies;
its last log lines become a one-line MatteconvError. The worker stays alive across run() calls.
"""
from __future__ import annotations

import os
import pickle
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ...errors import MatteconvError

WORKER = Path(__file__).with_name("worker.py")
# glog's FATAL / ERROR prefix: "F1201 10:00:00.000000 123 file.cpp:20] msg"; glog 0.7 also writes the year
# ("F20261201 ...")
_GLOG = re.compile(r"^[FE](?:\d{8}|\d{4}) [\d:.]+\s+\d+ [^\]]*\] ?(.*)$")
_PYERR = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")


def caffe_message(log: str, limit: int = 400) -> str:
    """The useful part of a dead worker's stderr: protobuf parse errors and glog FATAL/ERROR messages."""
    picked = []
    for line in log.splitlines():
        line = line.strip()
        m = _GLOG.match(line)
        if m:
            picked.append(m.group(1))
        elif line.startswith("[libprotobuf ERROR"):
            picked.append(line.split("] ", 1)[-1])
        elif _PYERR.match(line):  # a Python exception that killed the worker (e.g. pycaffe missing)
            picked.append(line)
    if not picked:
        picked = [ln for ln in log.strip().splitlines()[-3:] if ln.strip() and not ln.startswith("    @")]
    msg = " | ".join(dict.fromkeys(picked)) or "no message"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def split_input(x: np.ndarray, inputs) -> dict[str, np.ndarray]:
    """A 1xCxHxW model input as the net's feeds: `inputs` (name, shape) in feed order take consecutive channel
    ranges (a split-input export: image 3 channels, then prev_alpha 1)."""
    feeds, c = {}, 0
    for name, shp in inputs:
        feeds[name] = np.ascontiguousarray(x[:, c: c + shp[1]], dtype=np.float32)
        c += shp[1]
    return feeds


class CaffeWorker:
    """One pycaffe Net in a child process. With a prototxt, load happens at construction; without one the worker
    only starts (importing caffe, about 1 s) and `load` is called later, so that start can overlap other work.
    run() feeds named inputs."""

    def __init__(self, prototxt: str | Path | None = None, caffemodel: str | Path | None = None,
                 timeout: float = 600.0, script: Path = WORKER, env: dict[str, str] | None = None):
        """`script`: the worker to run (another one may add ops to worker.main, e.g. the fp16 emulator's);
        `env`: variables set for the worker only (export/caffe/segments.py's allocator settings)."""
        self.prototxt = Path(prototxt) if prototxt is not None else Path("pycaffe worker")
        self.timeout = timeout
        self._log = tempfile.TemporaryFile()
        env = dict(os.environ, **(env or {}))
        env.setdefault("GLOG_minloglevel", "2")
        self.proc = subprocess.Popen([sys.executable, "-P", str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env)
        if prototxt is not None:
            self.load(prototxt, caffemodel)

    def load(self, prototxt: str | Path, caffemodel: str | Path | None = None) -> dict:
        """Load a Net (replacing any loaded before); returns and keeps its description in `info`."""
        self.prototxt = Path(prototxt)
        try:
            self.info = self._call({"op": "load", "prototxt": str(self.prototxt),
                                    "weights": str(caffemodel) if caffemodel else None})
        except BaseException:  # an error, Ctrl-C or SIGTERM while loading: the worker does not outlive us
            self.proc.kill()
            self.proc.wait()
            raise
        return self.info

    def run(self, inputs: dict[str, np.ndarray], blobs: tuple[str, ...] = ()) -> dict:
        return self._call({"op": "run", "inputs": inputs, "blobs": list(blobs)})

    def run_part(self, prototxt: str | Path, feeds: list[str], keep: list[str], needed: list[str],
                 inputs: dict[str, np.ndarray] | None = None, fetch: list[str] = ()) -> dict[str, np.ndarray]:
        """Build a Net of some of the loaded Net's layers (weights copied from it by layer name), feed it the named
        blobs from the worker's store (`inputs` are added to the store first), run it, store the blobs in `keep`,
        drop the Net and every stored blob not in `needed`, and return the stored blobs in `fetch`
        (export/caffe/segments.py: blobs stay in the worker between parts)."""
        return self._call({"op": "run_part", "prototxt": str(prototxt), "feeds": list(feeds), "keep": list(keep),
                           "needed": list(needed), "inputs": inputs or {}, "return": list(fetch)})["blobs"]

    def net_param(self) -> bytes:
        """The loaded net as a binary NetParameter (Caffe's own upgraded form of the prototxt, with weights)."""
        return self._call({"op": "net_param"})["net"]

    def _call(self, request: dict) -> dict:
        if self.proc.poll() is not None:
            self._died()
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            (n,) = struct.unpack("<Q", self._read(8))
            reply = pickle.loads(self._read(n))
        except (BrokenPipeError, EOFError, ConnectionError):
            self._died()
        if "error" in reply:
            raise MatteconvError(f"{self.prototxt}: pycaffe: {reply['error']}")
        return reply

    def _read(self, n: int) -> bytes:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.timeout
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise MatteconvError(f"{self.prototxt}: pycaffe did not answer within {self.timeout:.0f} s")
            chunk = os.read(fd, min(n - got, 1 << 22))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _died(self):
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.seek(0)
        log = self._log.read().decode("utf-8", "replace")
        how = "aborted" if code == -6 else f"exited with code {code}"
        raise MatteconvError(f"{self.prototxt}: Caffe {how}: {caffe_message(log)}")

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def __del__(self):
        self.close()


class CaffeBackend:
    """Backend protocol for a .prototxt (+ the .caffemodel beside it, or an explicit one)."""

    name = "caffe"
    worker_script = WORKER  # a subclass may run a worker with more ops (fp16/caffe_emu.py)

    def __init__(self, prototxt: str | Path, caffemodel: str | Path | None = None):
        prototxt = Path(prototxt)
        if not prototxt.is_file():
            raise MatteconvError(f"{prototxt}: prototxt not found")
        caffemodel = Path(caffemodel) if caffemodel else prototxt.with_suffix(".caffemodel")
        if not caffemodel.is_file():
            raise MatteconvError(f"{prototxt}: weights not found (expected {caffemodel})")
        self.path = prototxt
        self.worker = CaffeWorker(prototxt, caffemodel, script=self.worker_script)
        info = self.worker.info
        self.inputs: list[tuple[str, tuple[int, ...]]] = info["inputs"]
        self.output = info["outputs"][0]
        self.in_channels = sum(s[1] for _, s in self.inputs)
        self.size = tuple(self.inputs[0][1][2:4])

    def run(self, x: np.ndarray, blobs: tuple[str, ...] = ()) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        expected = (1, self.in_channels, *self.size)
        if x.shape != expected:
            raise MatteconvError(f"{self.path}: input shape {x.shape} does not match the model's {expected}")
        reply = self._forward(split_input(x, self.inputs), blobs)
        self.last_blobs = reply["blobs"]
        return reply["outputs"][self.output]

    def _forward(self, feeds: dict[str, np.ndarray], blobs: tuple[str, ...]) -> dict:
        return self.worker.run(feeds, blobs)

    def close(self) -> None:
        self.worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
