"""What a pass is: `Pass` (name, profiles, apply, default, after, exact) and the `PassContext` it runs in."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import onnx

from ..graph import GraphView

Counts = Union[int, dict[str, int]]  # what `apply` returns: how many rewrites (by form, for passes with several)


@dataclass
class PassContext:
    """What a pass may read besides the model: the cached `view` of it, the NCHWc `block` of the CPU the file is
    for (`ort_block.nchwc_block_size`, asked only when a pass reads it), and `notes`, one line per rewrite a pass
    wants shown (the depthwise plan lines)."""

    view: GraphView
    block_size: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def block(self) -> int:
        if self.block_size is None:
            from ..ort_block import nchwc_block_size

            self.block_size = nchwc_block_size()
        return self.block_size


@dataclass(frozen=True, kw_only=True)
class Pass:
    """One rewrite of the exported graph, in place.

    name: the CLI value (`--skip-pass NAME`), the key of the `passes` metadata, the test id.
    profiles: the export runtimes (`RUNTIMES`) it belongs to; "any" is the file for every runtime, atc included.
    apply(model, ctx) -> count (int, or {form: int}); 0 means the graph is as it was.
    default: run unless skipped; False: only when asked for (`add=`), kept registered for measurement.
    after: names of passes that must come before it in the registry when both run (checked at import).
    exact: one line on why the rewritten graph computes the same function (`--list-passes` shows it).
    does: what its count counts, in the user's terms (`export` shows it beside the count), or "" to show the count
    alone.
    record_zero: False leaves a count of 0 out of the file's `passes` metadata, so a pass that fires only on some
    inputs (global-pool-cascade: above a size) leaves the files it does not touch byte-identical to those
    written before it existed (the export's result still lists it)."""

    name: str
    profiles: frozenset[str]
    apply: Callable[[onnx.ModelProto, PassContext], Counts]
    default: bool = True
    after: tuple[str, ...] = ()
    exact: str = ""
    does: str = ""
    record_zero: bool = True
