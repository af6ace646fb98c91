"""`make bench-avx2`: run a benchmark with every library's AVX2 kernels on a CPU that has AVX-512.

The project's other machine kind (AMD EPYC) has AVX2 and FMA but no AVX-512 or AMX. On the AVX-512 kind this
re-executes the benchmark under `cpuid-avx2.so` (scripts/cpuid-avx2.c: CPUID faulting hides AVX-512, AMX and
AVX-VNNI from every library), so onnxruntime, oneDNN, PyTorch, OpenBLAS and numpy choose what they run there. The
result is an indication for that kind, printed as such, never a measurement of it: caches, clock and memory are
this machine's. On a CPU without AVX-512 nothing is masked (there is nothing to hide) and the run is a plain one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "scripts" / "cpuid-avx2.c"
MARK = "MATTECONV_AVX2_KERNELS"  # set in the re-executed process: the masking is active
LABEL = "AVX2 kernels forced (CPUID masked): an indication for AVX2 machines, not a measurement of one"


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first `flags` line of /proc/cpuinfo text, as a set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def build(out_dir: Path) -> Path:
    """Compile cpuid-avx2.so into `out_dir` unless it is newer than its source; return its path.
    Raises SystemExit with one line if no C compiler is found or it fails."""
    lib = out_dir / "cpuid-avx2.so"
    if lib.exists() and lib.stat().st_mtime >= SOURCE.stat().st_mtime:
        return lib
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise SystemExit(f"{SOURCE}: no C compiler (cc) to build it with; `make install` installs build-essential")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_suffix(".so.tmp")
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{SOURCE}: {cc} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
    tmp.replace(lib)
    return lib


def active() -> bool:
    """True inside the re-executed, masked process."""
    return os.environ.get(MARK) == "1"


def labelled(cpu: str) -> str:
    """`cpu` (matteconv.cpuinfo.cpu_kind: /proc/cpuinfo, which the masking does not change) with LABEL appended
    inside a masked run, so that no table printed there reads as this CPU's own kernels."""
    return f"{cpu}; {LABEL}" if active() else cpu


def reexec_masked(out_dir: Path) -> str:
    """Re-execute this Python program under cpuid-avx2.so if this CPU has AVX-512; return the label to print
    beside every ratio. Never returns when it re-executes. Raises SystemExit where CPUID faulting is missing."""
    if active():
        return LABEL
    flags = cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    if not any(f.startswith("avx512") for f in flags):
        return "no AVX-512 here: its own kernels, nothing masked"
    if "cpuid_fault" not in flags:
        raise SystemExit("/proc/cpuinfo: no cpuid_fault flag: this CPU or hypervisor cannot fault CPUID, so "
                         "AVX-512 cannot be hidden; run `make bench` on an AVX2 machine instead")
    lib = build(out_dir)
    env = dict(os.environ, **{MARK: "1"})
    env["LD_PRELOAD"] = " ".join(filter(None, [str(lib), os.environ.get("LD_PRELOAD", "")]))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
    raise AssertionError("unreachable")
