"""Stand-in executables for Ascend tools (atc, msame) and helpers to install them for a test."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

HERE = Path(__file__).parent


def install(name: str, dest: Path, as_name: str | None = None) -> Path:
    """Copy fake `name` into dest (created), with a shebang pointing at this interpreter; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    text = (HERE / name).read_text().split("\n", 1)[1]
    target = dest / (as_name or name)
    target.write_text(f"#!{sys.executable}\n{text}")
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def env_with_path(*dirs: Path, **extra: str) -> dict[str, str]:
    """A copy of os.environ whose PATH has only `dirs` plus the system bins (no real Ascend tools)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASCEND_", "DDK_", "FAKE_"))}
    env["PATH"] = os.pathsep.join([*(str(d) for d in dirs), "/usr/bin", "/bin"])
    env["HOME"] = extra.pop("HOME", env.get("HOME", "/nonexistent"))
    env.update(extra)
    return env


def use_env(monkeypatch, env: dict[str, str]) -> None:
    """Make `env` (from env_with_path) the whole process environment for one test."""
    for k in list(os.environ):
        if k not in env:
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def toolkit(root: Path, version: str | None, arch: str = "x86_64") -> Path:
    """A fake CANN toolkit at `root`: bin/atc plus, if `version`, the install record CANN writes
    (`<arch>-linux/ascend_toolkit_install.info`, same keys as a real one). Returns the atc path."""
    atc = install("atc", root / "bin")
    if version:
        info = root / f"{arch}-linux" / "ascend_toolkit_install.info"
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(f"package_name=Ascend-cann-toolkit\nversion={version}\ninnerversion=V100R001C23B000\n"
                        f"arch={arch}\nos=linux\npath={info.parent}\n")
    return atc
