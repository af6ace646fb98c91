"""The Ascend SoC as the cost model sees it: published constants, each with its source, and the few fitted ones.

Published (fixed) constants of Ascend 310, from the SoC description CANN's own tests load for "ascend310"
(hicann/ge `tests/engines/nn_engine/st/stub/platform_util_stub.h`, `PlatformUtilStub::EVB1910`, the Hi1910 =
Ascend 310 board): 2 AI cores, Cube 16x16x16 (M, K, N: 4096 fp16 multiply-accumulates per cycle and core),
vector width 256 bytes per cycle (128 fp16 lanes), L0A/L0B 64 KiB, L0C 256 KiB, L1 1 MiB, L2 8 MiB, DDR
bandwidth 67 (GB/s: the 128-bit LPDDR4X of the datasheet at 4266 MT/s gives 68.3) and a clock of 680 MHz.
INT8: the Cube takes K = 32 per cycle (16x32x16), which is why the datasheet gives 16 TOPS INT8 against
8 TFLOPS fp16 (Huawei Ascend 310 product page; docs/design.md section 10), and INT8 tensors use 32-channel C0
blocks (NC1HWC0 with C0 = 32 bytes / sizeof(int8)).

AI CPU: the rate at which the AI CPU path converts elements, from the one published timing of such a path
(Ascend/ModelZoo-PyTorch `ACL_PyTorch/contrib/cv/segmentation/ICNet/readme.md`, section 7.2: the fp32 output
TransData of 1x19x1024x2048 takes 558 ms, 5.5 ms with `--output_type=FP16`): 39.8 M elements in 552.5 ms
= 72 M elements/s.

Fitted constants (`fitted.json` beside this file, written by `scripts/profile_calibrate.py` from the batch-1
device times in `published.json`): the share of Cube peak a convolution reaches (`cube_efficiency`), the
bandwidth a memory-bound kernel reaches (`bandwidth_gbs`, effective: L2 hits raise it above DDR) and the fixed
cost of one kernel launch (`op_overhead_us`: task scheduling, scalar tiling code, pipeline fill).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ...errors import MatteconvError

GE_STUB = ("hicann/ge tests/engines/nn_engine/st/stub/platform_util_stub.h (PlatformUtilStub::EVB1910, "
           "soc_version ascend310)")
DATASHEET = "Huawei Ascend 310 datasheet: 8 TFLOPS fp16, 16 TOPS INT8, 8 W (docs/design.md section 10)"
ICNET = ("Ascend/ModelZoo-PyTorch ACL_PyTorch/contrib/cv/segmentation/ICNet/readme.md section 7.2: fp32 output "
         "TransData of 1x19x1024x2048 558 ms, 5.5 ms with --output_type=FP16")
FITTED_FILE = Path(__file__).with_name("fitted.json")
PUBLISHED_FILE = Path(__file__).with_name("published.json")


@dataclass(frozen=True)
class Fitted:
    """The free constants; defaults are the starting point of the fit (used when fitted.json is absent)."""

    cube_efficiency: float = 0.5  # share of Cube peak a convolution's cycles reach (tiling, L1 loads)
    bandwidth_gbs: float = 67.0  # effective GB/s of a memory-bound kernel
    op_overhead_us: float = 10.0  # per kernel launch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Soc:
    """One SoC. Cycle counts are per AI core; times in seconds unless a name says otherwise."""

    name: str
    cores: int
    clock_hz: float
    cube_m: int  # rows of the Cube fractal (output pixels per cycle)
    cube_n: int  # output channels per cycle
    cube_k_fp16: int  # input channels (x kernel taps) per cycle, fp16
    cube_k_int8: int
    vector_bytes: int  # per cycle and core
    ddr_gbs: float
    l2_bytes: int
    aicpu_elements_per_s: float
    fitted: Fitted = field(default_factory=Fitted)
    sources: dict = field(default_factory=dict)

    def c0(self, precision: str) -> int:
        """Channels per NC1HWC0 block: 16 fp16, 32 INT8 (the Cube's K)."""
        return self.cube_k_int8 if precision == "int8" else self.cube_k_fp16

    def vector_elements_per_cycle(self, precision: str = "fp16") -> int:
        return self.vector_bytes // (1 if precision == "int8" else 2)

    @property
    def bandwidth(self) -> float:
        """Bytes per second a memory-bound kernel moves (fitted)."""
        return self.fitted.bandwidth_gbs * 1e9

    @property
    def op_overhead(self) -> float:
        return self.fitted.op_overhead_us * 1e-6

    def with_fitted(self, fitted: Fitted) -> "Soc":
        return replace(self, fitted=fitted)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cube_peak_fp16_tmacs"] = self.cores * self.clock_hz * self.cube_m * self.cube_n * self.cube_k_fp16 / 1e12
        return d


ASCEND310 = Soc(
    name="Ascend310", cores=2, clock_hz=680e6, cube_m=16, cube_n=16, cube_k_fp16=16, cube_k_int8=32,
    vector_bytes=256, ddr_gbs=67.0, l2_bytes=8 * 1024 * 1024, aicpu_elements_per_s=19 * 1024 * 2048 / 0.5525,
    sources={"cores, clock_hz, cube_m/n/k_fp16, vector_bytes, ddr_gbs, l2_bytes": GE_STUB,
             "cube_k_int8": f"{DATASHEET}: INT8 is twice fp16 per cycle, i.e. K = 32",
             "aicpu_elements_per_s": ICNET,
             "fitted": "fitted.json (scripts/profile_calibrate.py on published.json)"},
)

SOCS = {"Ascend310": ASCEND310}


def load_fitted(path: Path = FITTED_FILE) -> Fitted:
    """The fitted constants from fitted.json; defaults when the file is absent (before the first fit)."""
    if not path.is_file():
        return Fitted()
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Fitted(**d["constants"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise MatteconvError(f"{path}: not a fitted-constants file ({type(e).__name__}: {e})") from None


def get_soc(name: str = "Ascend310", fitted: Fitted | None = None) -> Soc:
    """The named SoC with the fitted constants (from fitted.json unless given). Raises MatteconvError for a SoC
    the model has no constants for."""
    if name not in SOCS:
        raise MatteconvError(f"no cost model for --soc {name!r} (have: {', '.join(SOCS)})")
    return SOCS[name].with_fitted(fitted if fitted is not None else load_fitted())
