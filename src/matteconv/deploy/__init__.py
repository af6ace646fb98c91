"""Deployment: generate the on-device app for an .om (HiLens skill, pyACL, ais_bench) and run it on the host
against stand-in device modules before it reaches a board."""
from .device import DeviceModel, EmulatedOmBackend, make_engine, read_record
from .generate import RUNTIMES, DeployOptions, DeployResult, generate_app
from .simulate import SimulationResult, simulate

__all__ = ["RUNTIMES", "DeployOptions", "DeployResult", "DeviceModel", "EmulatedOmBackend", "SimulationResult",
           "generate_app", "make_engine", "read_record", "simulate"]
