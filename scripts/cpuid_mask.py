"""Run a program as if this CPU had fewer instruction-set extensions (scripts/cpuid-mask.c, LD_PRELOAD).

Two uses:
- `make bench-avx2` (`scripts/bench.py --kernels avx2`): on the AVX-512 kind, the benchmark re-executes itself with
  AVX-512, AMX and AVX-VNNI hidden, so onnxruntime, oneDNN, PyTorch, OpenBLAS and numpy choose the kernels they run
  on the AMD EPYC kind (AVX2 + FMA). An indication for that kind, labelled as such, never a measurement of it:
  caches, clock and memory are this machine's.
- `make test-portable`: `python scripts/cpuid_mask.py --keep avx -- <command>` also hides AVX2, FMA, BMI and F16C,
  so onnxruntime's MLAS, which has no switch of its own, runs its AVX kernels like the other libraries' lowered ones.

Where CPUID faulting is missing (/proc/cpuinfo flag `cpuid_fault`), or the CPU has nothing above the level kept,
the command runs unmasked and a `cpuid-mask skipped: <why>` line says so.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from matteconv.cpuinfo import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "scripts" / "cpuid-mask.c"
MARK = "MATTECONV_CPUID_MASK"  # set in a masked process: the level kept
LEVELS = {"avx2": ("avx512",), "avx": ("avx512", "avx2", "fma")}  # level kept -> /proc/cpuinfo flag prefixes hidden
LABEL = "AVX2 kernels forced (CPUID masked): an indication for AVX2 machines, not a measurement of one"


def this_cpu_flags() -> set[str]:
    """This machine's instruction-set flags (/proc/cpuinfo, which the masking does not change)."""
    return cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))


def why_unmasked(keep: str, flags: set[str]) -> str | None:
    """None if masking down to `keep` is possible and changes something here, else the reason it is not."""
    if not any(f.startswith(p) for f in flags for p in LEVELS[keep]):
        return f"this CPU has nothing above {keep.upper()} to hide"
    if "cpuid_fault" not in flags:
        return "no cpuid_fault flag in /proc/cpuinfo: this CPU or hypervisor cannot fault CPUID"
    return None


def build(out_dir: Path) -> Path:
    """Compile cpuid-mask.so into `out_dir` unless it is newer than its source; return its path.
    Raises SystemExit with one line if no C compiler is found or it fails."""
    lib = out_dir / "cpuid-mask.so"
    if lib.exists() and lib.stat().st_mtime >= SOURCE.stat().st_mtime:
        return lib
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise SystemExit(f"{SOURCE}: no C compiler (cc) to build it with; `make install` installs build-essential")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"cpuid-mask.so.{os.getpid()}.tmp"
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise SystemExit(f"{SOURCE}: {cc} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    tmp.replace(lib)
    return lib


# OpenCV names the masking hides already: OpenCV warns on stderr when told to disable a feature the CPU lacks
OPENCV_HIDDEN = {"avx2": ("AVX512",), "avx": ("AVX512", "AVX2", "FMA3", "FP16")}


def masked_env(lib: Path, keep: str) -> dict[str, str]:
    """This environment with cpuid-mask.so preloaded at level `keep` (and OPENCV_CPU_DISABLE without the
    features the masking hides, which OpenCV would warn about)."""
    env = dict(os.environ, CPUID_MASK_KEEP=keep, **{MARK: keep})
    if "OPENCV_CPU_DISABLE" in env:
        names = [n for n in env["OPENCV_CPU_DISABLE"].split(",") if n and not n.startswith(OPENCV_HIDDEN[keep])]
        env["OPENCV_CPU_DISABLE"] = ",".join(names)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(lib), os.environ.get("LD_PRELOAD", "")]))
    return env


def labelled(cpu: str) -> str:
    """`cpu` (matteconv.cpuinfo.cpu_kind: /proc/cpuinfo, which the masking does not change) with LABEL appended
    inside a `--kernels avx2` benchmark, so that no table printed there reads as this CPU's own kernels."""
    return f"{cpu}; {LABEL}" if os.environ.get(MARK) == "avx2" else cpu


def reexec_masked(out_dir: Path) -> str:
    """For a benchmark: re-execute this Python program with AVX-512 hidden if this CPU has it; return the label to
    print beside every ratio. Never returns when it re-executes. Raises SystemExit where CPUID faulting is missing
    (a benchmark that asked for AVX2 kernels must not run with others)."""
    if os.environ.get(MARK) == "avx2":
        return LABEL
    flags = this_cpu_flags()
    if not any(f.startswith("avx512") for f in flags):
        return "no AVX-512 here: its own kernels, nothing masked"
    reason = why_unmasked("avx2", flags)
    if reason:
        raise SystemExit(f"/proc/cpuinfo: {reason}, so AVX-512 cannot be hidden; run `make bench` on an AVX2 machine")
    lib = build(out_dir)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], masked_env(lib, "avx2"))
    raise AssertionError("unreachable")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", choices=sorted(LEVELS), default="avx2", help="the highest level left visible")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build", help="where cpuid-mask.so is built")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given (cpuid_mask.py --keep avx -- pytest ...)")
    reason = why_unmasked(args.keep, this_cpu_flags())
    env = dict(os.environ)
    if reason is None:
        env = masked_env(build(args.build_dir), args.keep)
        # the flag can be there while the kernel refuses ARCH_SET_CPUID: the library then exits 3 with one line
        trial = subprocess.run([sys.executable, "-c", ""], env=env, capture_output=True, text=True, check=False)
        if trial.returncode != 0:
            reason = (trial.stderr.strip().splitlines() or [f"exit {trial.returncode}"])[-1]
            env = dict(os.environ)
    if reason:
        print(f"cpuid-mask skipped: {reason}; running unmasked", file=sys.stderr, flush=True)
    else:
        print(f"cpuid-mask: every library sees no {', no '.join(p.upper() for p in LEVELS[args.keep])} "
              f"(CPUID_MASK_KEEP={args.keep})", file=sys.stderr, flush=True)
    os.execvpe(command[0], command, env)
    return 127


if __name__ == "__main__":
    sys.exit(main())
