"""Which CPU kind a measurement ran on: benchmark ratios differ between kinds (onnxruntime and PyTorch pick
kernels by instruction set: AVX2, AVX-512, AMX; oneDNN/MLAS dispatch), so every ratio is printed with it."""
from __future__ import annotations

import os
import platform

# the instruction-set extensions that change which CPU kernels onnxruntime (MLAS) and PyTorch (oneDNN) pick
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _field(cpuinfo: str, *keys: str) -> str | None:
    """The value of the first line of /proc/cpuinfo text whose key is one of `keys`, or None."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value
    return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first CPU's instruction-set flags from /proc/cpuinfo text: its `flags` line (x86) or `Features` (Arm);
    empty if it has neither."""
    return set((_field(cpuinfo, "flags", "Features") or "").split())


def cpu_kind(cpuinfo: str | None = None) -> str:
    """'AMD EPYC, 2 cores, avx2 fma (no avx512, no amx)' from /proc/cpuinfo (Linux; `cpuinfo` text for tests);
    elsewhere the platform's processor string and core count."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    model, flags = (_field(cpuinfo, "model name") or "").strip(), cpu_flags(cpuinfo)
    cores = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
    have = [f for f in KERNEL_FLAGS if f in flags]
    missing = [name for name, prefix in (("avx512", "avx512"), ("amx", "amx")) if not any(f.startswith(prefix)
                                                                                         for f in flags)]
    text = f"{model or platform.machine()}, {cores or os.cpu_count()} cores, {' '.join(have) or 'no AVX2'}"
    return text + (f" (no {', no '.join(missing)})" if missing else "")
