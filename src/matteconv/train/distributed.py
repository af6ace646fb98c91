"""Running unchanged under `torchrun --nproc_per_node N`: DistributedDataParallel (NCCL on GPUs, gloo on CPU).

Each process takes its slice of the same global batch, so N processes compute what one process computes with
the whole batch: gradients are averaged by DDP, and BatchNorm statistics are reduced over the global batch by
GlobalBatchNorm (torch's SyncBatchNorm refuses CPU tensors).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, global_batch: int) -> range:
        """The global sample positions this process handles."""
        per = global_batch // self.size
        return range(self.rank * per, (self.rank + 1) * per)


def setup(device: str) -> World:
    """Join the process group that torchrun describes in the environment (no-op for one process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


_STATS_GROUP = None  # BatchNorm statistics get their own process group: DDP's asynchronous gradient all-reduces
# run on the default group while backward reduces statistics' gradients, and two streams of collectives on one
# gloo group can pair up differently on different ranks (measured: weights off by 3.5e-3 after one step).


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batch of every process (differentiable all-reduce)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        shape = (1, c, 1, 1)
        local = torch.cat([x.sum((0, 2, 3)), torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)])
        total = all_reduce(local, group=_STATS_GROUP)
        n = total[-1]
        mean = total[:c] / n
        # two passes, as BatchNorm2d does: E[x^2] - mean^2 cancels badly when the mean dwarfs the spread
        var = all_reduce(((x - mean.view(shape)) ** 2).sum((0, 2, 3)), group=_STATS_GROUP) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def use_global_batchnorm(model: nn.Module) -> None:
    """Swap every BatchNorm2d for GlobalBatchNorm in place (same parameters, buffers and state_dict keys)."""
    global _STATS_GROUP
    if _STATS_GROUP is None:
        _STATS_GROUP = dist.new_group()
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GlobalBatchNorm


def mean_over_world(value: torch.Tensor, world: World) -> float:
    if world.size > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world.size
    return float(value.detach())


