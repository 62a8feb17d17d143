"""Distributed data parallel at the loop's edge: set up from torchrun's environment (gloo on CPU,
NCCL on GPU); every rank reads the same global batch and trains on its own share of it."""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Single process unless launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, torch.device("cuda", local) if cuda else torch.device("cpu"))


def any_rank(flag: bool, dist: Dist) -> bool:
    """True if ``flag`` is true on any rank, so that all ranks stop together."""
    if dist.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dist.device)
    torch_dist.all_reduce(t)
    return bool(t.item() > 0)


def all_gather(t: torch.Tensor, dist: Dist) -> list[torch.Tensor]:
    """Every rank's ``t`` (same shape on all ranks), on the CPU, in rank order."""
    if dist.world == 1:
        return [t]
    t = t.to(dist.device)  # NCCL gathers device tensors only
    out = [torch.empty_like(t) for _ in range(dist.world)]
    torch_dist.all_gather(out, t)
    return [x.cpu() for x in out]


def main_first(dist: Dist, make):
    """``make()`` on rank 0, then on the others once it is done: rank 0 writes what they read."""
    made = make() if dist.main else None
    barrier(dist)
    return made if dist.main else make()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch_dist.barrier()


def shutdown(dist: Dist) -> None:
    if dist.world > 1 and torch_dist.is_initialized():
        # DDP's reducer holds the group from inside a reference cycle: collect it now, or it is freed at
        # interpreter exit, where gloo's teardown at times aborts the process ("terminate called ...").
        gc.collect()
        torch_dist.destroy_process_group()
