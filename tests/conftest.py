"""Shared fixtures: the trained reference checkpoints, loaded once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GLOG_minloglevel", "2")
# The cores shared out: `make test` runs one xdist worker per core, so each takes one torch thread (two threads
# per worker oversubscribed the 2-core machine: 325 s against 225 s); a plain `pytest` run takes up to two.
# A test that relies on a thread count sets its own.
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))

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
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("onnx") / "ref3.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), out, (512, 512))
    return out


@pytest.fixture(scope="session")
def ref3_onnx_128(ref3_ckpt, tmp_path_factory) -> Path:
    """The reference exported at 128x128 (the size most tests run at): one export per test run, shared."""
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("onnx128") / "ref3_128.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), out, (128, 128))
    return out


@pytest.fixture(scope="session")
def golden_photos_128():
    """The golden photos at 128x128 with float64 alphas of the golden set's own checkpoint at that size, for
    exports judged faster than at the golden size but still against whatever checkpoint the manifest names.
    Returns (model, inputs: name -> 1xCxHxW float32, float64 alphas: name -> array, caffe tolerance)."""
    import copy

    import numpy as np

    from matteconv import preprocess
    from matteconv.verify.golden import golden_model, load_golden, model_input

    gset = load_golden(GOLDEN_PHOTOS)
    model, _ = golden_model(gset)
    model64 = copy.deepcopy(model).double().eval()
    frames = {it.name: preprocess.prepare(it.image(), gset.manifest["policy"], (128, 128)).frame for it in gset.items}
    with torch.no_grad():
        refs = {n: model64(torch.from_numpy(model_input(f, None, np.float64))).numpy() for n, f in frames.items()}
    return model, {n: model_input(f, None) for n, f in frames.items()}, refs, gset.tolerance("caffe")


@pytest.fixture(scope="session")
def flat_wall_channels() -> torch.Tensor:
    """What a grey wall makes inside IBNorm (DESIGN section 9): each channel one non-round constant far from zero,
    varying only on its 1-pixel border (zero padding), 1x4x144x256 float32. Where one-pass fp32 means and
    E[x^2] - E[x]^2 variances cancel (onnxruntime's InstanceNormalization, Caffe's MVN)."""
    gen = torch.Generator().manual_seed(17)
    x = torch.zeros(1, 4, 144, 256, dtype=torch.float64) + torch.tensor([50.3, -20.7, 8.1, 3.3])[None, :, None, None]
    b = torch.randn(1, 4, 144, 256, generator=gen, dtype=torch.float64) * 0.5
    x[:, :, 0] += b[:, :, 0]
    x[:, :, -1] += b[:, :, -1]
    x[..., 0] += b[..., 0]
    x[..., -1] += b[..., -1]
    return x.float()


@pytest.fixture(scope="session")
def hr16_ckpt(tmp_path_factory) -> Path:
    """A lighter MODNet (`hr_channels=16`, 3 input channels) in the released layout (reference.quick_reference)."""
    from matteconv.reference import quick_reference, save_reference

    path = tmp_path_factory.mktemp("ckpt") / "modnet_hr16.ckpt"
    save_reference(quick_reference(3, hr_channels=16), path)
    return path


def toy_onnx_and_golden(model: torch.nn.Module, folder: Path, size: tuple[int, int], photos: int,
                        golden_sizes: tuple[tuple[int, int], ...], name: str = "toy"
                        ) -> tuple[Path, dict[tuple[int, int], Path]]:
    """A toy matting model (1x3xHxW -> 1x1xHxW, eval mode) as folder/NAME.onnx at `size` (input 'input', output
    'alpha', opset 11), and float64 golden sets of the first `photos` built-in photos, one per size in
    `golden_sizes`: ({size: folder/g{H}x{W}})."""
    from matteconv import samples
    from matteconv.verify.golden import make_golden

    onnx_path = folder / f"{name}.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, *size),), str(onnx_path), opset_version=11, input_names=["input"],
                      output_names=["alpha"], dynamo=False)
    chosen = list(samples.photos().items())[:photos]
    sets = {hw: folder / f"g{hw[0]}x{hw[1]}" for hw in golden_sizes}
    for hw, target in sets.items():
        make_golden(model, chosen, target, hw)
    return onnx_path, sets

