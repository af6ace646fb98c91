"""Refuse an export that cannot fit in memory before spending minutes on it."""
from __future__ import annotations

from ..errors import MatteconvError

# Peak memory of an export grows with the pixels. Measured (ONNX, 2 threads, process peak RSS): 0.66 GB at 256,
# 0.72 GB at 512, 1.06 GB at 1024 for export + simplify + both fp32 runs; the float64 reference the parity rule
# needs at large sizes (export/parity.py, convolutions in row tiles) brings 1024 to 2.2 GB. So about BASE +
# PER_PIXEL bytes in the worst case: 2048x2048 ~7.9 GB, 4096x4096 ~31 GB. Refused up front when it cannot fit.
EXPORT_BASE_BYTES = 0.35e9
EXPORT_BYTES_PER_PIXEL = 1800.0


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_memory(hw: tuple[int, int], base_bytes: float, bytes_per_pixel: float, needs: str, advice: str) -> None:
    """Raise MatteconvError "--size HxW: {needs} about N GB of memory, M GB is available; {advice}" when
    base_bytes + bytes_per_pixel * H * W (a measured peak, bytes) exceeds MemAvailable; pass where it is unknown."""
    need = base_bytes + bytes_per_pixel * hw[0] * hw[1]
    have = available_memory()
    if have is not None and need > have:
        raise MatteconvError(f"--size {hw[0]}x{hw[1]}: {needs} about {need / 1e9:.1f} GB of memory, "
                             f"{have / 1e9:.1f} GB is available; {advice}")


def check_memory(hw: tuple[int, int]) -> None:
    """The export (see EXPORT_BYTES_PER_PIXEL) at model size hw."""
    require_memory(hw, EXPORT_BASE_BYTES, EXPORT_BYTES_PER_PIXEL, "the export needs",
                   "export at a smaller size (Ascend models run at a fixed size: 512 or 384 is typical)")
