"""MobileNetV2 backbone exactly as MODNet's official code builds it (module names match its checkpoints)."""
from __future__ import annotations

import torch
from torch import nn

from .grad_ops import run_sequential


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


def conv_1x1_bn(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expansion: int, dilation: int = 1):
        super().__init__()
        hidden_dim = round(inp * expansion)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(inp, hidden_dim, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden_dim),
                       nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, dilation=dilation, bias=False),
            nn.BatchNorm2d(hidden_dim), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = run_sequential(self.conv, x, self.training)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]  # t (expansion), c, n, s

    def __init__(self, in_channels: int, alpha: float = 1.0, expansion: int = 6):
        super().__init__()
        input_channel = _make_divisible(32 * alpha, 8)
        last_channel = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
        features: list[nn.Module] = [conv_bn(in_channels, input_channel, 2)]
        for t, c, n, s in self.SETTINGS:
            t = expansion if t != 1 else 1
            output_channel = _make_divisible(int(c * alpha), 8)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(conv_1x1_bn(input_channel, last_channel))
        self.features = nn.Sequential(*features)


class MobileNetV2Backbone(nn.Module):
    """Encoder taps after features[1], [3], [6], [13], [18]: strides 2, 4, 8, 16, 32."""

    TAPS = (1, 3, 6, 13, 18)

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.model = MobileNetV2(in_channels, alpha=1.0, expansion=6)
        self.enc_channels = [16, 24, 32, 96, 1280]
        self.train(self.training)

    def train(self, mode: bool = True) -> "MobileNetV2Backbone":
        """Also sets every ReLU6 to run in place in eval only. In training, autograd clones the input of an in-place
        hardtanh_ to keep it for backward (PyTorch's derivatives.yaml gives hardtanh's gradient from its input and
        has no result-based entry for hardtanh_), which costs more than writing a new tensor: 7 ms a training step
        at batch 4, 256x256. Eval and every export are unchanged."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.ReLU6):
                module.inplace = not mode
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.model.features):
            # in training, the large BatchNorms (and their ReLU6) through model/grad_ops.py
            x = run_sequential(layer, x, self.training) if isinstance(layer, nn.Sequential) else layer(x)
            if i in self.TAPS:
                feats.append(x)
        return feats
