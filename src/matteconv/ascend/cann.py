"""Which CANN a found compiler belongs to, and whether that CANN still accepts the `--soc_version` asked for.

Why: `--soc_version=Ascend310` (Atlas 200 DK, HiLens Kit, Atlas 300I model 3000) is in atc's parameter list up
to CANN 8.2.RC1 and gone from 8.3.RC1 on; atc then fails with a message about the SoC, not about the version.
We say it before atc runs, with what to use instead.

Version sources, first found wins (walking up from the tool, through symlinks too):
1. `ascend_toolkit_install.info` (`version=8.0.RC1`), in the toolkit root's `<arch>-linux/` folder: CANN's
   installation guide, "File Paths" (https://www.hiascend.com/document/detail/en/canncommercial/800/
   softwareinst/instg/instg_0044.html; 8.5: `/usr/local/Ascend/cann/<arch>-linux/`).
2. `version.cfg` (`runtime_running_version=[<inner>:8.1.RC1]`: the part after the colon).
3. `version.info` (`Version=...`): component or old-DDK versions (e.g. `$DDK_HOME/uihost/version.info`).
4. `atc --version` output (undocumented: the first CANN-style version on a line that mentions "version").
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .discover import Tool

ATC_PARAMS_82 = ("https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/82RC1alpha003/devaids/atctool/"
                 "atlasatcparam_16_0036.html")
ATC_PARAMS_83 = ("https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/83RC1/devaids/atctool/"
                 "atlasatcparam_16_0035.html")


@dataclass(frozen=True)
class Soc:
    name: str
    boards: str
    last_cann: str | None = None  # last CANN whose atc lists it (None: still listed)
    instead: str = ""


SOCS: dict[str, Soc] = {s.name: s for s in (
    Soc("Ascend310", "Atlas 200 DK, Atlas 300I (model 3000), HiLens Kit", "8.2.RC1",
        "use --soc-version Ascend310B1 for Atlas 200I DK A2 / Orange Pi AIpro boards or Ascend310P3 for "
        "Atlas 300I Pro/Duo cards; an Ascend 310 device itself needs a toolkit of CANN 8.2.RC1 or older"),
    Soc("Ascend310B1", "Atlas 200I DK A2, Orange Pi AIpro"),
    Soc("Ascend310P3", "Atlas 300I Pro / Duo, Atlas 300V"),
)}


def soc_help() -> str:
    """The --soc-version help text: every SoC we know, with its boards and CANN limit."""
    parts = [f"{s.name} ({s.boards}{f'; CANN <= {s.last_cann}' if s.last_cann else ''})" for s in SOCS.values()]
    return "Target SoC for atc: " + ", ".join(parts) + "."


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(RC\d+|\d+|T\d+))?", re.IGNORECASE)


def version_key(text: str) -> tuple[int, int, int, int] | None:
    """'8.3.RC1' -> (8, 3, 0, 1); '8.0.0' -> (8, 0, 1, 0): a release sorts after its RCs; None if not a version."""
    m = _VERSION.search(text or "")
    if not m:
        return None
    major, minor, tail = int(m.group(1)), int(m.group(2)), (m.group(3) or "").upper()
    if tail.startswith("RC"):
        return major, minor, 0, int(tail[2:])
    if tail.startswith("T") or not tail:
        return major, minor, 0, 0
    return major, minor, 1, int(tail)


def soc_problem(soc_version: str, cann_version: str | None) -> str | None:
    """Why atc of `cann_version` will not take `soc_version`, with what to use instead; None when it will (or
    when either is unknown to us: then atc decides)."""
    soc = SOCS.get(soc_version)
    have, last = version_key(cann_version or ""), version_key(soc.last_cann or "") if soc else None
    if soc is None or have is None or last is None or have <= last:
        return None
    return (f"--soc-version {soc_version} is not accepted by CANN {cann_version} (atc lists it up to "
            f"{soc.last_cann}: {ATC_PARAMS_82} vs {ATC_PARAMS_83}): {soc.instead}")


@dataclass(frozen=True)
class ToolkitVersion:
    version: str | None
    source: str  # the file it came from, "<tool> --version", or why it is unknown

    def __str__(self) -> str:
        return f"{self.version} ({self.source})" if self.version else f"unknown ({self.source})"


_LINE = re.compile(r"^\s*(?:version|\w+_version)\s*=\s*\[?([^\]\s]+)", re.IGNORECASE)


def _read_version(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            return m.group(1).rsplit(":", 1)[-1]  # version.cfg: [inner:release]
    return None


def _parents(tool: Tool, depth: int = 4) -> list[Path]:
    seen: list[Path] = []
    for start in (tool.path, tool.path.resolve()):
        for p in list(start.parents)[:depth]:
            if p not in seen:
                seen.append(p)
    return seen


def toolkit_version(tool: Tool, ask_tool: bool = True, timeout: float = 10.0) -> ToolkitVersion:
    """The CANN (or DDK) version of the install `tool` belongs to."""
    dirs = _parents(tool)
    for pattern in ("ascend_toolkit_install.info", "*-linux/ascend_toolkit_install.info", "version.cfg",
                    "version.info"):
        for d in dirs:
            for f in sorted(d.glob(pattern)):
                v = _read_version(f)
                if v:
                    return ToolkitVersion(v, str(f))
    if ask_tool and tool.name == "atc":
        try:
            from ..proc import run as run_in_group  # its own process group, ended on timeout or a signal

            proc = run_in_group([str(tool.path), "--version"], timeout=timeout)
            for line in proc.stdout.decode("utf-8", "replace").splitlines():
                m = _VERSION.search(line) if "version" in line.lower() else None
                if m and m.group(3):
                    return ToolkitVersion(m.group(0), f"{tool.path} --version")
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ToolkitVersion(None, "no version file found beside the tool")
