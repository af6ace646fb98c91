"""AIPP (Ascend on-chip preprocessing): read any config as GraphEngine does (parse), say what ATC refuses and what
it does (check, by the rule table in rules.py; explain), render configs that reproduce matteconv.preprocess
(render), and emulate the chip in numpy so the config is proven before it reaches a device (emulate)."""
from __future__ import annotations

from pathlib import Path

from . import parse as _parse
from .check import check_config, check_model_inputs, explain_op, validate_config
from .emulate import aipp_model_input, emulate, rgb_to_nv12, rgb_to_nv21
from .parse import AippConfig, AippOp
from .render import PRESETS, AippSpec, render_config, write_config
from .rules import AIPP_RULES


def parse_config(text: str, path: str = "<text>", validate: bool = True) -> AippConfig:
    """Protobuf text of `aipp_op { ... }` blocks -> AippConfig. Raises MatteconvError "file:line: problem
    [source]" for what protobuf's text parser refuses and, with validate (the default), for the first error of
    the block and file rules (what GraphEngine or the AIPP operator refuse; check.validate_config). Warnings are
    not raised: see check_config."""
    cfg = _parse.parse_config(text, path)
    if validate:
        validate_config(cfg)
    return cfg


def load_config(path: str | Path, validate: bool = True) -> AippConfig:
    """Read, parse and (validate, the default) check an AIPP config file, as parse_config; its bytes are read as
    protobuf's text parser reads them (parse.decode_config)."""
    cfg = _parse.load_config(path)
    if validate:
        validate_config(cfg)
    return cfg


__all__ = ["AIPP_RULES", "PRESETS", "AippConfig", "AippOp", "AippSpec", "aipp_model_input", "check_config",
           "check_model_inputs", "emulate", "explain_op", "load_config", "parse_config", "render_config",
           "rgb_to_nv12", "rgb_to_nv21", "validate_config", "write_config"]
