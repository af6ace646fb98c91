"""Find Ascend's model compilers (CANN `atc`, old DDK `omg`) the way their own set_env.sh scripts lay them out.

Order for atc: PATH, $ASCEND_TOOLKIT_HOME, $ASCEND_HOME_PATH, /usr/local/Ascend/ascend-toolkit/latest,
$HOME/Ascend/ascend-toolkit/latest; under each root `bin/atc` or `atc/bin/atc` (older CANN).
omg: PATH, then $DDK_HOME/uihost/bin/omg (HiLens-era DDK). Each step is a function so tests can drive it with
environment dicts and temporary folders; nothing here runs the tool (its version: `cann.py`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

TOOLS = ("atc", "omg")
SYSTEM_ROOTS = ("/usr/local/Ascend/ascend-toolkit/latest",)
ROOT_VARS = ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")


@dataclass(frozen=True)
class Tool:
    """A found compiler: its name (atc|omg), path, and where it was found (for messages)."""

    name: str
    path: Path
    source: str


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def toolkit_roots(env: Mapping[str, str] | None = None, system_roots=SYSTEM_ROOTS) -> list[tuple[Path, str]]:
    """Candidate toolkit roots in search order, each with the reason it is a candidate."""
    env = os.environ if env is None else env
    roots: list[tuple[Path, str]] = []
    for var in ROOT_VARS:
        if env.get(var):
            roots.append((Path(env[var]), f"${var}"))
    roots += [(Path(r), r) for r in system_roots]
    if env.get("HOME"):
        roots.append((Path(env["HOME"]) / "Ascend/ascend-toolkit/latest", "$HOME/Ascend/ascend-toolkit/latest"))
    return roots


def candidates(name: str, env: Mapping[str, str] | None = None, system_roots=SYSTEM_ROOTS) -> list[tuple[Path, str]]:
    """Every place `name` may live, in order (PATH entries first)."""
    if name not in TOOLS:
        raise ValueError(f"unknown Ascend tool {name!r} (atc or omg)")
    env = os.environ if env is None else env
    out: list[tuple[Path, str]] = []
    for d in env.get("PATH", "").split(os.pathsep):
        if d:
            out.append((Path(d) / name, "PATH"))
    if name == "atc":
        for root, why in toolkit_roots(env, system_roots):
            out.append((root / "bin" / "atc", why))
            out.append((root / "atc" / "bin" / "atc", why))
    elif env.get("DDK_HOME"):
        out.append((Path(env["DDK_HOME"]) / "uihost" / "bin" / "omg", "$DDK_HOME"))
    return out


def find_tool(name: str = "atc", env: Mapping[str, str] | None = None, system_roots=SYSTEM_ROOTS) -> Tool | None:
    """The first executable `name` in search order, or None."""
    for path, why in candidates(name, env, system_roots):
        if _executable(path):
            return Tool(name, path, why)
    return None


def find_any(prefer: str | None = None, env: Mapping[str, str] | None = None, system_roots=SYSTEM_ROOTS) -> Tool | None:
    """`prefer` if given, else atc, then omg."""
    for name in ([prefer] if prefer else ["atc", "omg"]):
        tool = find_tool(name, env, system_roots)
        if tool:
            return tool
    return None
