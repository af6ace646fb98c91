"""`make test` / `make test-slow`: run pytest with the given arguments, then print the ten slowest tests and the
wall time, so a slowdown shows in every run. Speed is reported here, never asserted (a timed test would fail
on a busy machine): the budget for tier 1 is 300 s on a 2-core AMD EPYC without AVX-512 (docs/testing.md)."""
from __future__ import annotations

import sys
import time

import pytest

BUDGET_S = 300.0


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    rc = pytest.main(["-q", "--durations=10", *argv])
    wall = time.monotonic() - t0
    tier = "tier 1 (make test)" if "not slow" in argv else "this run"
    note = "" if "not slow" not in argv or wall <= BUDGET_S else f"  OVER the {BUDGET_S:.0f} s budget"
    print(f"wall time, {tier}: {wall:.0f} s{note}", flush=True)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
