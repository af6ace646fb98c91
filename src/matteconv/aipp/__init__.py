"""AIPP (Ascend on-chip preprocessing): read any config as GraphEngine does (parse), say what ATC refuses and what
it does (check), render configs that reproduce matteconv.preprocess (render), and emulate the chip in numpy so
the config is proven before it reaches a device (emulate)."""
from .check import check_config, check_model_inputs, explain_op
from .emulate import aipp_model_input, emulate, rgb_to_nv12, rgb_to_nv21
from .parse import AippConfig, AippOp, load_config, parse_config
from .render import PRESETS, AippSpec, render_config, write_config

__all__ = ["PRESETS", "AippConfig", "AippOp", "AippSpec", "aipp_model_input", "check_config", "check_model_inputs",
           "emulate", "explain_op", "load_config", "parse_config", "render_config", "rgb_to_nv12", "rgb_to_nv21",
           "write_config"]
