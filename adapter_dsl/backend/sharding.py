"""Tensors of sharded models (FSDP2 ``fully_shard``) for saving: gathered, written by rank 0.

Under ``torch.distributed.fsdp.fully_shard`` every parameter is a ``DTensor`` holding this
rank's shard. Saving gathers each one (``full_tensor()``, a collective: every rank must save,
in the same order) and only rank 0 writes, so the files are the same as from one process.
Unsharded models (one process, DDP) are written as before, by whichever rank saves.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["copy_full_into", "gathered", "is_sharded", "writes_here"]


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a ``DTensor`` (a ``fully_shard`` model)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _full(tensor: Tensor) -> tuple[Tensor, bool]:
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        return tensor.full_tensor(), True
    return tensor, False


def gathered(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], bool]:
    """Detached, contiguous CPU copies of ``tensors`` (shards gathered); and whether any was
    sharded."""
    out: dict[str, Tensor] = {}
    sharded = False
    for key, tensor in tensors.items():
        full, was_sharded = _full(tensor.detach())
        sharded = sharded or was_sharded
        out[key] = full.to("cpu").contiguous().clone()
    return out, sharded


def writes_here(sharded: bool) -> bool:
    """Whether this process writes the files: always, unless sharded and not rank 0."""
    if not sharded:
        return True
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def copy_full_into(target: Tensor, value: Tensor) -> None:
    """``target.copy_(value)`` for a full ``value``; a sharded ``target`` takes its own shard
    (computed locally on every rank from the same full value: no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    value = value.to(dtype=target.dtype)
    if isinstance(target, DTensor):
        value = distribute_tensor(
            value.to(target.device), target.device_mesh, target.placements, src_data_rank=None
        )
        target.copy_(value)
        return
    target.copy_(value.to(device=target.device))
