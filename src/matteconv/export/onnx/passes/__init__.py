"""The ONNX rewrites `export_onnx` runs, one `Pass` per module, in one ordered registry.

Adding a pass: a module here with a `PASS = Pass(...)` (base.py) and its name in `_ORDER`, where it must run;
`after` names the passes it relies on, and the registry refuses, at import, an order that breaks one. The
contract test (tests/test_passes.py) then holds it to what every pass promises: idempotent, graph outputs and
their names kept, new nodes inside the replaced node's module scope (what `compare` matches by), a graph the ONNX
checker takes, and onnxruntime within the export's parity rule.

Profiles are the export runtimes: `any` (one file for every runtime, atc included) and `onnxruntime` (tuned for
onnxruntime's CPU provider; `matteconv om` refuses it).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable

import onnx

from ....errors import MatteconvError
from ..graph import GraphView
from .base import Counts, Pass, PassContext

PROFILES = ("any", "onnxruntime")
_ORDER = ("relu_before_concat", "split_sliced_conv", "split_concat_conv", "centre_instance_norm", "depthwise_split",
          "fix_resize_modes", "global_pool_cascade", "ort_matmul_head", "ort_select_ibnorm", "ort_blocked_in_relu", "ort_half_pixel",
          "ort_upsampled_conv")


def check_registry(passes: tuple[Pass, ...]) -> None:
    """Raise if two passes share a name, a pass names an unknown profile, or an `after` constraint is unknown or
    not met by the order (the named pass must come earlier)."""
    seen: dict[str, int] = {}
    for i, p in enumerate(passes):
        if p.name in seen:
            raise ValueError(f"pass {p.name!r} is registered twice")
        if not p.profiles or not p.profiles <= set(PROFILES):
            raise ValueError(f"pass {p.name!r}: profiles {sorted(p.profiles)} outside {PROFILES}")
        seen[p.name] = i
    for p in passes:
        for before in p.after:
            if before not in seen:
                raise ValueError(f"pass {p.name!r} runs after {before!r}, which is not registered")
            if seen[before] > seen[p.name]:
                raise ValueError(f"pass {p.name!r} must run after {before!r} but is registered before it")


REGISTRY: tuple[Pass, ...] = tuple(importlib.import_module(f"{__name__}.{m}").PASS for m in _ORDER)
check_registry(REGISTRY)
BY_NAME = {p.name: p for p in REGISTRY}


def resolve(profile: str, skip: Iterable[str] = (), add: Iterable[str] = ()) -> tuple[Pass, ...]:
    """The passes an export for `profile` runs, in registry order: every default pass of the profile, plus the
    non-default ones named in `add`, minus those in `skip`. Raises MatteconvError for an unknown profile or
    name, and for a name in `add` that is not in the profile."""
    if profile not in PROFILES:
        raise MatteconvError(f"runtime {profile!r} not supported (choose from {', '.join(PROFILES)})")
    skip, add = set(skip), set(add)
    for name in sorted(skip | add):
        if name not in BY_NAME:
            raise MatteconvError(f"no ONNX pass named {name!r} (choose from {', '.join(BY_NAME)}; "
                                 "`matteconv export --list-passes`)")
    for name in sorted(add):
        if profile not in BY_NAME[name].profiles:
            raise MatteconvError(f"pass {name!r} is not for runtime {profile!r} (it is for "
                                 f"{', '.join(sorted(BY_NAME[name].profiles))})")
    return tuple(p for p in REGISTRY if profile in p.profiles and (p.default or p.name in add)
                 and p.name not in skip)


def run_passes(model: onnx.ModelProto, passes: Iterable[Pass], ctx: PassContext | None = None) -> dict[str, Counts]:
    """Apply `passes` to `model` in place, in the order given; {name: count} for each, in that order."""
    ctx = PassContext(GraphView(model)) if ctx is None else ctx
    counts: dict[str, Counts] = {}
    for p in passes:
        counts[p.name] = p.apply(model, ctx)
        ctx.view.changed()
    return counts


def recorded_counts(counts: dict[str, Counts]) -> dict[str, Counts]:
    """The counts an export writes in its `passes` metadata: all of them but the zero counts of passes with
    `record_zero=False`."""
    def zero(v: Counts) -> bool:
        return not any(v.values()) if isinstance(v, dict) else v == 0

    return {k: v for k, v in counts.items() if not (zero(v) and k in BY_NAME and not BY_NAME[k].record_zero)}


def exported_runtime(model: onnx.ModelProto) -> str:
    """The runtime (profile) an ONNX file was exported for (export_onnx's `runtime`, kept in metadata_props); files
    from elsewhere, or from before the option, are `any`."""
    return next((p.value for p in model.metadata_props if p.key == "runtime"), "any")


__all__ = ["BY_NAME", "PROFILES", "REGISTRY", "Pass", "PassContext", "check_registry", "exported_runtime",
           "recorded_counts", "resolve", "run_passes"]
