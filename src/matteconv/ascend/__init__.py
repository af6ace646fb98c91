"""Ascend tooling: find atc/omg, build their exact argv after checking the model for known traps, run them with
a kept log and an atomic .om, and run .om files on the device through msame or ais_bench."""
from .build import BuildError, BuildPlan, BuildResult, RuleError, build_om, plan_build, run_build
from .command import ModelInfo, build_argv, inspect_model, model_problems
from .discover import Tool, find_any, find_tool
from .runners import Runner, find_runner, run_om

__all__ = ["BuildError", "BuildPlan", "BuildResult", "ModelInfo", "RuleError", "Runner", "Tool", "build_argv",
           "build_om", "find_any", "find_runner", "find_tool", "inspect_model", "model_problems", "plan_build",
           "run_build", "run_om"]
