"""Compatibility re-export: the AIPP config code lives in schema.py (fields, GE defaults, sources), parse.py
(protobuf text as ATC reads it), check.py (refusals, lints, explanations) and render.py (our configs)."""
from .check import check_model_inputs, validate_config, validate_op
from .parse import AippConfig, AippOp, load_config, parse_config
from .render import CLI_FORMATS, PRESETS, AippSpec, parse_crop, parse_wxh, render_config, spec_to_op, write_config
from .schema import (AIPP_MODES, ASCEND310_FORMATS, CSC_INPUT_BIAS, CSC_YUV2RGB, FIELDS, INPUT_FORMATS, MATRIX_KEYS,
                     YUV_FORMATS)

__all__ = ["AIPP_MODES", "ASCEND310_FORMATS", "CLI_FORMATS", "CSC_INPUT_BIAS", "CSC_YUV2RGB", "FIELDS", "INPUT_FORMATS",
           "MATRIX_KEYS", "PRESETS", "YUV_FORMATS", "AippConfig", "AippOp", "AippSpec", "check_model_inputs",
           "load_config", "parse_config", "parse_crop", "parse_wxh", "render_config", "spec_to_op", "validate_config",
           "validate_op", "write_config"]
