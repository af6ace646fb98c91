"""MODNet inference model with the official module names, so official checkpoints load without renaming.

Differences from the official code, all deliberate:
- `forward` is inference-only and returns the matte (the semantic and detail heads are not computed).
- In training mode the branches compute the same functions with cheaper backward passes (model/grad_ops.py);
  eval mode, which every export traces, runs the official operations.
- `in_channels=4` (temporal variant, channel 3 = previous alpha): the HR and fusion branches concatenate the
  whole input tensor instead of a 3-channel image, so their first convs take `+ in_channels`.
- `split_inputs=True` gives forward(image, prev_alpha), concatenated inside the graph, for Ascend AIPP.
- `hr_channels` (the official constructor's argument, 32 by default): `hr_branch.conv_hr4x.0` takes
  2*hr + 32 + in_channels channels, which is what its forward concatenates (hr4x: 2*hr, lr4x: the LR branch's 32
  = enc_channels[2], img4x). The official code sizes it 3*hr + 3: the same number at hr=32, so every official
  checkpoint loads unchanged, but at any other hr the official model cannot run (its forward fails on that
  cat). Forks that train a lighter MODNet make exactly this fix (2*hr + 32 + 3); the loader names the
  official-constructor case when it meets one (model/checkpoint.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .grad_ops import conv5_of_up2, conv_of_concat, ibnorm_train, trains_fast, up2, upsampled_head
from .mobilenetv2 import MobileNetV2Backbone


class IBNorm(nn.Module):
    """BatchNorm on the first int(C/2) channels, InstanceNorm (no affine) on the rest."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.bnorm_channels = int(in_channels / 2)
        self.inorm_channels = in_channels - self.bnorm_channels
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(self.inorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and trains_fast(self.bnorm):
            # Both halves in one pass each way instead of two slices, two kernels and a Concat; the same function
            # within fp32 rounding (model/grad_ops.py, tests/test_grad_ops.py).
            return ibnorm_train(self.bnorm, self.inorm.eps, x)
        # eval (every export traces this; also training with distributed training's GlobalBatchNorm): the two
        # Slices our ONNX rewrites and Caffe lowering expect
        bn_x = self.bnorm(x[:, : self.bnorm_channels, ...].contiguous())
        in_x = self.inorm(x[:, self.bnorm_channels :, ...].contiguous())
        return torch.cat((bn_x, in_x), 1)


class Conv2dIBNormRelu(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, with_ibn=True, with_relu=True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                             padding=padding, dilation=dilation, groups=groups, bias=bias)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, int(in_channels // reduction), bias=False), nn.ReLU(inplace=True),
            nn.Linear(int(in_channels // reduction), out_channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.pool(x).flatten(1)
        # The official code unsqueezes twice; a reshape to a constant N x C x 1 x 1 is the same view, but exports
        # as one ONNX Reshape instead of a 2-axis Unsqueeze, which OpenCV DNN 4.x refuses ("Multidimensional
        # unsqueeze").
        w = self.fc(w).reshape(-1, self.fc[2].out_features, 1, 1)
        return x * w


class LRBranch(nn.Module):
    def __init__(self, backbone: MobileNetV2Backbone):
        super().__init__()
        enc = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(enc[4], enc[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc[4], enc[3], 5, stride=1, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc[3], enc[2], 5, stride=1, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def forward(self, img: torch.Tensor):
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        enc32x = self.se_block(enc32x)
        lr16x = conv5_of_up2(self.conv_lr16x, enc32x, self.training)  # channel sums first in training
        lr8x = self.conv_lr8x(up2(lr16x, self.training))
        return lr8x, enc2x, enc4x


class HRBranch(nn.Module):
    def __init__(self, hr_channels: int, enc_channels: list[int], in_channels: int = 3):
        super().__init__()
        hr = hr_channels
        self.tohr_enc2x = Conv2dIBNormRelu(enc_channels[0], hr, 1, stride=1, padding=0)
        self.conv_enc2x = Conv2dIBNormRelu(hr + in_channels, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc_channels[1], hr, 1, stride=1, padding=0)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1)
        self.conv_hr4x = nn.Sequential(  # cat(hr4x: 2*hr, lr4x: enc_channels[2], img4x): see the module docstring
            Conv2dIBNormRelu(2 * hr + enc_channels[2] + in_channels, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1))
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1))
        # Unused at inference, kept so checkpoints load strictly.
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + in_channels, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, 1, 1, stride=1, padding=0, with_ibn=False, with_relu=False))

    def forward(self, img, enc2x, enc4x, lr8x):
        img2x = F.interpolate(img, scale_factor=1 / 2, mode="bilinear", align_corners=False)
        img4x = F.interpolate(img, scale_factor=1 / 4, mode="bilinear", align_corners=False)
        enc2x = self.tohr_enc2x(enc2x)
        # in training, a convolution of a concatenation with an image part runs per part (model/grad_ops.py)
        hr4x = conv_of_concat(self.conv_enc2x, (img2x, enc2x), self.training)
        enc4x = self.tohr_enc4x(enc4x)
        hr4x = self.conv_enc4x(torch.cat((hr4x, enc4x), dim=1))
        lr4x = up2(lr8x, self.training)
        hr4x = conv_of_concat(self.conv_hr4x, (hr4x, lr4x, img4x), self.training)
        hr2x = up2(hr4x, self.training)
        return self.conv_hr2x(torch.cat((hr2x, enc2x), dim=1))


class FusionBranch(nn.Module):
    def __init__(self, hr_channels: int, enc_channels: list[int], in_channels: int = 3):
        super().__init__()
        hr = hr_channels
        self.conv_lr4x = Conv2dIBNormRelu(enc_channels[2], hr, 5, stride=1, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr + in_channels, int(hr / 2), 3, stride=1, padding=1),
            Conv2dIBNormRelu(int(hr / 2), 1, 1, stride=1, padding=0, with_ibn=False, with_relu=False))

    def forward(self, img, lr8x, hr2x):
        lr4x = self.conv_lr4x(up2(lr8x, self.training))
        lr2x = up2(lr4x, self.training)
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        return upsampled_head(self.conv_f, f2x, img, self.training)


class MODNet(nn.Module):
    """forward(img) -> matte in [0, 1], shape Nx1xHxW; H and W multiples of 32."""

    def __init__(self, in_channels: int = 3, hr_channels: int = 32, split_inputs: bool = False):
        super().__init__()
        if in_channels not in (3, 4):
            raise ValueError(f"in_channels must be 3 or 4, got {in_channels}")
        if split_inputs and in_channels != 4:
            raise ValueError("split inputs (image + prev_alpha) need a 4-channel model")
        self.in_channels = in_channels
        self.hr_channels = hr_channels
        self.split_inputs = split_inputs
        self.backbone = MobileNetV2Backbone(in_channels)
        self.lr_branch = LRBranch(self.backbone)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels, in_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels, in_channels)

    def forward(self, img: torch.Tensor, prev_alpha: torch.Tensor | None = None) -> torch.Tensor:
        if self.split_inputs:
            img = torch.cat((img, prev_alpha), dim=1)
        lr8x, enc2x, enc4x = self.lr_branch(img)
        hr2x = self.hr_branch(img, enc2x, enc4x, lr8x)
        return self.f_branch(img, lr8x, hr2x)


def with_split_inputs(model: MODNet, split_inputs: bool) -> MODNet:
    """`model` itself if it already has this input form, else the same architecture (in_channels, hr_channels)
    and weights with forward(img) or forward(image, prev_alpha), in eval mode."""
    if model.split_inputs == split_inputs:
        return model.eval()
    out = MODNet(model.in_channels, model.hr_channels, split_inputs=split_inputs)
    out.load_state_dict(model.state_dict())
    return out.eval()
