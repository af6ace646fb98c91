"""The temporal model shipped as a float16 delta against the official weights (temporal_delta.py), with the shipped
3-channel reference standing in for the official model: rebuilt exactly as recorded, within float16 rounding of
the change from the trained model, refused against other base weights."""
from __future__ import annotations

import pytest
import torch

from matteconv.errors import MatteconvError
from matteconv.model.checkpoint import load_checkpoint
from matteconv.reference import trained_path
from matteconv.temporal_delta import rebuild, write_delta
from matteconv.train.trainer import save_weights
from matteconv.train.widen import widen_to_temporal


def test_delta_rebuilds_the_fine_tuned_model(tmp_path):
    official = load_checkpoint(trained_path(3)).model
    temporal = widen_to_temporal(official)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # what a fine-tune with --freeze lr_branch moves: the HR and fusion branches
        for name, p in temporal.named_parameters():
            if name.startswith(("hr_branch.", "f_branch.")):
                p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    save_weights(temporal, tmp_path / "t.safetensors")
    info = write_delta(tmp_path / "t.safetensors", trained_path(3), tmp_path / "d.safetensors")
    assert info["tensors"] == sum(1 for n, _ in temporal.named_parameters() if n.startswith(("hr_branch.", "f_branch.")))
    assert info["bytes"] < 0.12 * (tmp_path / "t.safetensors").stat().st_size
    rebuilt = rebuild(trained_path(3), tmp_path / "d.safetensors").state_dict()
    want = temporal.state_dict()
    for k, v in want.items():
        if v.is_floating_point():  # float16 rounding of a 1e-3 change: 2^-11 of it, plus the float32 sum
            assert float((rebuilt[k] - v).abs().max()) <= 1e-3 * 5 * 2 ** -11 + 1e-7, k
    # any other 3-channel weights: the reference with one weight nudged
    other3 = load_checkpoint(trained_path(3)).model
    with torch.no_grad():
        other3.f_branch.conv_f[1].layers[0].bias.add_(0.01)
    save_weights(other3, tmp_path / "other.safetensors")
    with pytest.raises(MatteconvError, match="not the official weights"):
        rebuild(tmp_path / "other.safetensors", tmp_path / "d.safetensors")


@pytest.mark.slow
def test_the_shipped_delta_rebuilds_on_the_official_model(tmp_path):
    """The committed delta against the official checkpoint `make install` imports: the recorded weights (the hash
    is checked inside rebuild), a 4-channel model that is the official one for a blank previous alpha."""
    from matteconv import official
    from matteconv.temporal_delta import SHIPPED

    try:
        off = official.official_checkpoint()
    except MatteconvError:
        pytest.skip("the official model is not installed (make install)")
    model = rebuild(off, SHIPPED).eval()
    ref = load_checkpoint(off).model.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert float((model(torch.cat([x, torch.zeros(1, 1, 64, 64)], 1)) - ref(x)).abs().max()) < 1e-5
        assert float((model(torch.cat([x, torch.ones(1, 1, 64, 64)], 1)) - ref(x)).abs().max()) > 1e-3
