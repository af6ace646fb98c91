"""Shared fixtures: the trained reference checkpoints, loaded once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GLOG_minloglevel", "2")
torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_PHOTOS = ROOT / "golden" / "photos"
GOLDEN_CLIP = ROOT / "golden" / "clip"


@pytest.fixture(scope="session")
def ref3_model():
    """The trained 3-channel reference (what golden/photos is made from)."""
    from matteconv.reference import reference_model

    return reference_model(3)


@pytest.fixture(scope="session")
def ref4_model():
    """The trained 4-channel (temporal) reference (what golden/clip is made from)."""
    from matteconv.reference import reference_model

    return reference_model(4)


@pytest.fixture(scope="session")
def ref3_ckpt(ref3_model, tmp_path_factory) -> Path:
    """The 3-channel reference in the official released layout (module. prefix, backbone twice)."""
    from matteconv.reference import save_reference

    path = tmp_path_factory.mktemp("ckpt") / "modnet_ref3.ckpt"
    save_reference(ref3_model, path)
    return path


@pytest.fixture(scope="session")
def ref4_ckpt(ref4_model, tmp_path_factory) -> Path:
    from matteconv.reference import save_reference

    path = tmp_path_factory.mktemp("ckpt") / "modnet_ref4.pt"
    save_reference(ref4_model, path)
    return path


@pytest.fixture(scope="session")
def ref3_onnx(ref3_ckpt, tmp_path_factory) -> Path:
    """The reference exported at the golden photo size (512x512), as `matteconv export` does."""
    from matteconv.export.onnx_export import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("onnx") / "ref3.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), out, (512, 512))
    return out
