"""How a command ends: child processes in their own process group, killed as a group; SIGTERM handled like Ctrl-C.

Why a group: atc and the device runners are often wrapper scripts whose own children (the real compiler, a
`sleep`) survive when only the direct child is killed; they end up under PID 1. Why SIGTERM as an exception:
the default action ends Python without running any `finally`, so temporaries beside the outputs stay behind.
Raised as `Terminated` (a KeyboardInterrupt), it takes exactly the cleanup path Ctrl-C takes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Iterator, Sequence

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a child's process group


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGINT or SIGTERM); `exit_code` is what a shell expects (128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises Terminated in the main thread; later ones are ignored
    so that the cleanup the first one started is not itself interrupted. Handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, _frame):
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nobody left in the group
        os.killpg(pgid, sig)


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """End the child's whole process group: SIGTERM, SIGKILL after `grace` seconds for whatever is left (the
    leader's own children too), and reap the child."""
    _signal_group(proc.pid, signal.SIGTERM)  # started with start_new_session: the child leads its own group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def run(argv: Sequence[str], timeout: float | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run argv (never a shell string) in its own process group, stdout+stderr captured together, stdin closed.
    On timeout, an exception or a signal the whole group is killed before this returns or raises; after a normal
    exit whatever the tool left running in its group is killed too. Raises subprocess.TimeoutExpired (with the
    output so far) and OSError (could not start) like subprocess.run."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, output=out) from None
    except BaseException:
        kill_group(proc)
        with contextlib.suppress(Exception):
            proc.communicate(timeout=KILL_GRACE)
        raise
    _signal_group(proc.pid, signal.SIGKILL)  # what the tool left running in its group
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)
