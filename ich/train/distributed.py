"""Data-parallel training across processes (``torchrun``): gloo on CPU, NCCL on GPUs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    device: torch.device

    @classmethod
    def from_env(cls) -> Distributed:
        """One process alone, or the process group ``torchrun`` describes in the environment."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if world > 1 and not dist.is_initialized():
            if cuda:
                torch.cuda.set_device(device)
            # The main process caches, validates and writes the model while the others wait:
            # far longer than the default collective timeout on a large data set.
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=6))
        return cls(dist.get_rank() if world > 1 else 0, world, device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def wrap(self, network: nn.Module) -> nn.Module:
        if self.world == 1:
            return network
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(network, device_ids=ids)

    def in_sync(self, network: nn.Module) -> bool:
        """True when every process holds the same weights (what DDP promises)."""
        total = torch.stack([p.detach().double().sum() for p in network.parameters()]).sum()
        if self.world == 1:
            return True
        gathered = [torch.zeros_like(total) for _ in range(self.world)]
        dist.all_gather(gathered, total.to(self.device))
        return all(torch.allclose(g, gathered[0], rtol=0, atol=1e-6) for g in gathered)

    @staticmethod
    def close() -> None:
        """End the process group, once, when all training in this process is done."""
        if dist.is_initialized():
            dist.destroy_process_group()
