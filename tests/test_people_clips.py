"""Clips of real people (matteconv.people) and the temporal model grown from a 3-channel checkpoint: the widened
model equals the 3-channel one at step 0 on a real photo, clips are pure functions of their seed, labels are the
composite's alpha, whole photos are held out, and the generator does not import training."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from matteconv import preprocess
from matteconv.model.checkpoint import load_checkpoint
from matteconv.people import clips, cutout, evaluate, photos
from matteconv.reference import trained_path
from matteconv.train.trainer import TrainConfig, build_model, freeze_batchnorm

SIZE = (96, 128)


@pytest.fixture(scope="module")
def cutter():
    """The shipped 3-channel reference as the cutter: a real model, small; the official one cuts better, but a
    clip's label is its own composite alpha whichever model cut the person out."""
    return cutout.CheckpointCutter(str(trained_path(3)), short_side=128)


def _photo_input(h: int = 128, w: int = 128) -> torch.Tensor:
    img = cv2.resize(photos.load("astronaut"), (w, h), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(preprocess.normalize(img, np.float64))


def test_widened_reference_is_the_three_channel_reference_on_a_photo():
    ref3 = load_checkpoint(trained_path(3)).model.double()
    m4 = build_model(TrainConfig(in_channels=4, init=str(trained_path(3)))).eval().double()
    assert m4.in_channels == 4
    x = _photo_input(64, 64)
    prevs = [torch.zeros(1, 1, 64, 64, dtype=torch.float64), torch.rand(1, 1, 64, 64, dtype=torch.float64,
                                                                        generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        a3 = ref3(x)
        outs = [m4(torch.cat([x, p], 1)) for p in prevs]
    assert torch.equal(outs[0], outs[1])                       # channel 3's weights are exactly zero
    assert float((outs[0] - a3).abs().max()) < 1e-12           # float64: only the summation order differs
    assert 0.05 < float(a3.mean()) < 0.95                      # a real matte, not a constant


def test_frozen_batchnorm_trains_from_the_loaded_function():
    """With --freeze-norm, step 0 of training computes the eval-mode matte (running statistics, not the batch's)."""
    x = _photo_input(64, 64).float()
    with torch.no_grad():
        ref = load_checkpoint(trained_path(3)).model.eval()(x)
        moved = load_checkpoint(trained_path(3)).model.train()(x)
        m = load_checkpoint(trained_path(3)).model.train()
        freeze_batchnorm(m)
        frozen = m(x)
    assert float((moved - ref).abs().max()) > 1e-2             # batch statistics change the function ...
    # ... frozen ones do not (the training path's kernels differ from inference's: fp32 rounding only)
    assert float((frozen - ref).abs().max()) < 1e-5
    assert m.training and all(p.requires_grad for p in m.parameters())


def test_clip_specs_are_pure_functions_of_seed_index_and_split():
    a, b = clips.random_spec(5, 3, photos.TRAIN), clips.random_spec(5, 3, photos.TRAIN)
    assert a == b
    assert clips.random_spec(5, 4, photos.TRAIN) != a and clips.random_spec(6, 3, photos.TRAIN) != a


def test_frames_repeat_bit_for_bit(cutter):
    spec = clips.random_spec(1, 0, photos.HELD_OUT, frames=6)
    one, two = clips.Clip(spec, cutter, SIZE), clips.Clip(spec, cutter, SIZE)
    for t in (0, 3, 5):
        f, g = one.frame(t), two.frame(t)
        assert np.array_equal(f.image, g.image) and np.array_equal(f.alpha, g.alpha)
    a = clips.training_item(2, 7, cutter, SIZE)
    b = clips.training_item(2, 7, cutter, SIZE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alpha, b.alpha)
    assert (a.prev is None) == (b.prev is None) and (a.prev is None or np.array_equal(a.prev, b.prev))


def test_labels_are_the_composites_alpha(cutter):
    checked = 0
    for index in range(4):
        spec = dataclasses.replace(clips.random_spec(3, index, photos.TRAIN, frames=12), noise=0.0)
        clip = clips.Clip(spec, cutter, SIZE)
        for t in range(0, 12, 3):
            f = clip.frame(t)
            a = f.alpha.astype(np.float64)[..., None]
            exact = a * f.fg + (1 - a) * f.bg
            assert np.abs(f.image - exact).max() <= 0.5 + 1e-9          # only the rounding to uint8
            assert np.array_equal(f.alpha, clip.alpha(t))
            assert f.alpha.min() >= 0 and f.alpha.max() <= 1
            checked += f.present
    assert checked >= 4                                                 # the person was in most frames


def test_noise_is_the_only_other_difference(cutter):
    spec = dataclasses.replace(clips.random_spec(3, 1, photos.TRAIN, frames=4), noise=2.0)
    f = clips.Clip(spec, cutter, SIZE).frame(2)
    d = f.image - (f.alpha[..., None] * f.fg + (1 - f.alpha[..., None]) * f.bg)
    assert 1.5 < d.std() < 2.5                                          # sigma 2 plus rounding, minus clipping


def test_people_enter_and_leave(cutter):
    """Off-frame keyframes give exactly empty frames; over a few clips some frames are blank, most are not."""
    blank = present = 0
    for index in range(6):
        spec = clips.random_spec(11, index, photos.TRAIN, frames=20)
        clip = clips.Clip(spec, cutter, (64, 64))
        for k in spec.keys:
            if k.side and float(k.t).is_integer():
                assert clip.alpha(int(k.t)).max() == 0
        for t in range(20):
            nonzero = bool(clip.alpha(t).any())
            present += nonzero
            blank += not nonzero
    assert blank > 0 and present > blank


def test_whole_photos_are_held_out():
    for table in (photos.PEOPLE, photos.BACKGROUNDS):
        train = {n for n, (s, _) in table.items() if s == photos.TRAIN}
        held = {n for n, (s, _) in table.items() if s == photos.HELD_OUT}
        assert train and held and not train & held
        assert photos.available(table, photos.HELD_OUT)                  # installed with scikit-image
        assert {p for n in held if (p := photos.path(n))}.isdisjoint({photos.path(n) for n in train})
    for index in range(30):
        h = clips.random_spec(0, index, photos.HELD_OUT)
        t = clips.random_spec(0, index, photos.TRAIN)
        assert photos.PEOPLE[h.person][0] == photos.BACKGROUNDS[h.background][0] == photos.HELD_OUT
        assert photos.PEOPLE[t.person][0] == photos.BACKGROUNDS[t.background][0] == photos.TRAIN


def test_flicker_counts_only_static_label_pixels():
    def frame(alpha):
        return clips.Frame(np.zeros((*alpha.shape, 3), np.uint8), alpha, None, None, bool(alpha.any()))

    lab = [np.zeros((4, 4), np.float32) for _ in range(3)]
    lab[1][0, 0] = lab[2][0, 0] = 1.0                          # pixel (0, 0) moves between frames 0 and 1
    pred = [np.zeros((4, 4), np.float32), np.full((4, 4), 0.1, np.float32), np.full((4, 4), 0.1, np.float32)]
    pred[1][0, 0] = pred[2][0, 0] = 0.9
    # pair 0-1: 15 static pixels changed by 0.1; pair 1-2: 16 static pixels unchanged
    assert evaluate.flicker(pred, [frame(a) for a in lab]) == pytest.approx((0.1 + 0.0) / 2, rel=1e-6)
    assert evaluate.frames_to_recover([0.0] * 5, [0.1, 0.1, 5e-4, 0.0, 0.0], 1) == 1
    assert evaluate.frames_to_recover([0.0] * 5, [0.1] * 5, 2) == 4


def test_the_generator_does_not_import_training():
    code = ("import sys, matteconv.people.clips, matteconv.people.evaluate, matteconv.seed_augment;"
            "bad = [m for m in sys.modules if m.startswith('matteconv.train')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_recovery_runs_reuse_the_undisturbed_frames(cutter):
    """A disturbed run that starts from the undisturbed run's alphas at frame k equals the one computed whole."""
    model = load_checkpoint(trained_path(4)).model.eval()
    frames = clips.Clip(clips.random_spec(4, 0, photos.HELD_OUT, frames=4), cutter, (64, 64)).frames()
    clean = evaluate._run(model, frames)
    for kind in ("blank", "corrupt"):
        whole = evaluate._run(model, frames, (2, kind))
        reused = evaluate._run(model, frames, (2, kind), clean)
        assert all(np.array_equal(a, b) for a, b in zip(whole, reused))
        assert np.array_equal(whole[1], clean[1]) and not np.array_equal(whole[2], clean[2])


@pytest.mark.slow
def test_freeze_keeps_a_branch_and_its_aliases_out_of_training(tmp_path):
    from matteconv.errors import MatteconvError
    from matteconv.train import train

    init = tmp_path / "init.safetensors"
    init.write_bytes(trained_path(3).read_bytes())
    cfg = TrainConfig(in_channels=4, init=str(init), size=(64, 64), batch_size=2, steps=2, optimizer="adam",
                      lr=1e-3, freeze_norm=True, freeze=("lr_branch",))
    train(cfg, tmp_path / "t.safetensors", threads=1)
    before = build_model(TrainConfig(in_channels=4, init=str(init))).state_dict()
    after = load_checkpoint(tmp_path / "t.safetensors").model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("backbone.", "lr_branch.")))
    moved = [k for k in before if k.startswith(("hr_branch.", "f_branch.")) and not torch.equal(before[k], after[k])]
    assert "f_branch.conv_f.0.layers.0.weight" in moved
    assert all(torch.equal(before[k], after[k]) for k in before if "running_" in k)   # --freeze-norm
    with pytest.raises(MatteconvError, match="--freeze backbone: choose from lr_branch"):
        TrainConfig(freeze=("backbone",)).check()


@pytest.mark.slow
def test_only_previous_alpha_moves_only_channel_three():
    """--only-previous-alpha: one Adam step changes the channel-3 slices of the widened convolutions outside the
    frozen branch and nothing else, bit for bit; with a zero previous alpha the model is still the 3-channel one."""
    from matteconv.train.losses import modnet_losses
    from matteconv.train.trainer import TrainingMODNet, train_only_previous_alpha
    from matteconv.train.widen import IMAGE_SLOT

    model = build_model(TrainConfig(in_channels=4, init=str(trained_path(3)))).train()
    freeze_batchnorm(model)
    model.lr_branch.requires_grad_(False)
    train_only_previous_alpha(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, torch.rand(2, 1, 64, 64, generator=g)], 1)
    gt = (torch.rand(2, 1, 64, 64, generator=g) > 0.5).float()
    semantic, detail, matte = TrainingMODNet(model)(x)
    modnet_losses(semantic, detail, matte, x[:, :3], gt).total.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in IMAGE_SLOT if not k.startswith("backbone.")}
    for k in changed:
        slot = IMAGE_SLOT[k] if IMAGE_SLOT[k] >= 0 else after[k].shape[1] + IMAGE_SLOT[k]
        rest = [i for i in range(after[k].shape[1]) if i != slot]
        assert torch.equal(before[k][:, rest], after[k][:, rest]) and not torch.equal(before[k], after[k])
    ref3 = load_checkpoint(trained_path(3)).model.eval()
    with torch.no_grad():
        img = _photo_input(64, 64).float()
        a4 = model.eval()(torch.cat([img, torch.zeros(1, 1, 64, 64)], 1))
        assert float((a4 - ref3(img)).abs().max()) < 1e-5
