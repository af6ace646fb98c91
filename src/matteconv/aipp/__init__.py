"""AIPP (Ascend on-chip preprocessing): render configs that reproduce matteconv.preprocess, parse and validate
any config, and emulate the chip in numpy so the config is proven before it reaches a device."""
from .config import (PRESETS, AippConfig, AippOp, AippSpec, check_model_inputs, load_config, parse_config, render_config,
                     write_config)
from .emulate import aipp_model_input, emulate, rgb_to_nv12, rgb_to_nv21

__all__ = ["PRESETS", "AippConfig", "AippOp", "AippSpec", "aipp_model_input", "check_model_inputs", "emulate", "load_config",
           "parse_config", "render_config", "rgb_to_nv12", "rgb_to_nv21", "write_config"]
