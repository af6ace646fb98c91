"""The seed's temporal model from a 3-channel one: `MODNet(in_channels=4)` with zero weights for channel 3.

Every convolution that sees the input image gets one more input channel, at the place where the image's
channels sit in its concatenated input; its weights there are zero, so at step 0 the 4-channel model computes
exactly the 3-channel model's alpha whatever previous alpha it is given.
"""
from __future__ import annotations

import torch

from ..errors import MatteconvError
from ..model.modnet import MODNet

# Parameter -> index of the new (previous-alpha) input channel: the image comes first in the backbone and in
# cat((img2x, enc2x)); last in cat((hr4x, lr4x, img4x)), cat((hr, img)) and cat((up2(f2x), img)).
IMAGE_SLOT = {
    "backbone.model.features.0.0.weight": 3,
    "hr_branch.conv_enc2x.layers.0.weight": 3,
    "hr_branch.conv_hr4x.0.layers.0.weight": -1,
    "hr_branch.conv_hr.0.layers.0.weight": -1,
    "f_branch.conv_f.0.layers.0.weight": -1,
}


def widen_to_temporal(model3: MODNet) -> MODNet:
    """A 4-channel MODNet equal to `model3` for any previous alpha (zero weights on channel 3)."""
    if model3.in_channels != 3:
        raise MatteconvError(f"--init must be a 3-channel checkpoint to widen, got {model3.in_channels} channels")
    model4 = MODNet(4, model3.hr_channels)
    src = model3.state_dict()
    out = {}
    for key, target in model4.state_dict().items():
        value = src[key]
        if value.shape != target.shape:
            slot = IMAGE_SLOT.get(key.replace("lr_branch.backbone.", "backbone."))
            if slot is None:
                raise MatteconvError(f"cannot widen {key}: {tuple(value.shape)} -> {tuple(target.shape)}")
            zeros = torch.zeros_like(value[:, :1])
            cut = value.shape[1] if slot == -1 else slot
            value = torch.cat((value[:, :cut], zeros, value[:, cut:]), dim=1)
        out[key] = value.clone()
    model4.load_state_dict(out)
    return model4
