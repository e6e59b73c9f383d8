"""FSDP2 (``fully_shard``) on one rank, in this process: saving gathers every DTensor, loading
gives each parameter its shard; and the optimizer-state conversions that sharded checkpoints use.

Two ranks under ``torchrun`` are in test_training_ddp.py; one rank runs in milliseconds and
still holds every parameter as a ``DTensor``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

from adapter_dsl.backend import add_adapter, add_fusion  # noqa: E402
from adapter_dsl.backend.fusion_io import load_fusion, load_fusion_weights, save_fusion  # noqa: E402
from adapter_dsl.backend.optimizer_state import by_index, by_name, keyed_by_name  # noqa: E402
from adapter_dsl.backend.sharding import is_sharded  # noqa: E402
from adapter_dsl.demo import synthetic_batch, tiny_classifier  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def _fused(seed: int) -> Any:
    model = tiny_classifier(seed=0, dropout=0.0).eval()
    add_adapter(model, "a", "seq_bn[reduction_factor=2]")
    add_adapter(model, "b", "seq_bn[reduction_factor=4]")
    add_fusion(model, ["a", "b"], "dynamic")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def test_save_fusion_gathers_a_sharded_fusion_and_loads_into_its_shards(
    one_rank: Any, tmp_path: Path
) -> None:
    from torch.distributed.fsdp import fully_shard

    sharded = _fused(seed=1)
    plain = _fused(seed=1)
    fully_shard(sharded, mesh=one_rank)
    assert is_sharded(sharded)
    save_fusion(sharded, "a,b", tmp_path / "f")  # was: "invalid python storage"
    # An unsharded copy with other fusion weights takes the saved ones: the same outputs.
    other = _fused(seed=1)
    with torch.no_grad():
        for n, p in other.named_parameters():
            if ".adapter_fusion_layer." in n:
                p.zero_()
    load_fusion_weights(other, tmp_path / "f")
    ids, _ = synthetic_batch(4, torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(other(input_ids=ids).logits, plain(input_ids=ids).logits)
    # Loading into the sharded model's own fusion copies each shard in place.
    load_fusion_weights(sharded, tmp_path / "f")
    bare = tiny_classifier(seed=0, dropout=0.0)
    add_adapter(bare, "a", "seq_bn[reduction_factor=2]")
    add_adapter(bare, "b", "seq_bn[reduction_factor=4]")
    assert load_fusion(bare, tmp_path / "f") == "a,b"


def _optimizer() -> tuple[Any, Any]:
    model = tiny_classifier(seed=0, dropout=0.0)
    add_adapter(model, "a", "lora", set_active=True)
    params = [p for n, p in model.named_parameters() if ".a." in n or "classifier" in n]
    optimizer = torch.optim.AdamW(
        [{"params": params[:-1]}, {"params": params[-1:], "weight_decay": 0.0}]
    )
    ids, labels = synthetic_batch(4, torch.Generator().manual_seed(0))
    model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    return model, optimizer


def test_optimizer_state_by_name_and_back_is_the_same_state() -> None:
    model, optimizer = _optimizer()
    state = optimizer.state_dict()
    named = by_name(state, model, optimizer, "x")
    assert keyed_by_name(named) and not keyed_by_name(state)
    first = next(iter(named["state"]))
    assert first.startswith("bert.") and ".a." in first
    back = by_index(named, model, optimizer, "x")
    assert back["param_groups"] == state["param_groups"]
    assert set(back["state"]) == set(state["state"])
    for i, entry in state["state"].items():
        assert all(torch.equal(entry[k], back["state"][i][k]) for k in entry)
    assert by_index(state, model, optimizer, "x") is state  # already by index


def test_optimizer_state_of_other_parameters_is_refused() -> None:
    model, optimizer = _optimizer()
    named = by_name(optimizer.state_dict(), model, optimizer, "x")
    fewer = {**named, "param_groups": [named["param_groups"][0]]}
    with pytest.raises(ConfigError, match=r"parameter groups of sizes \[\d+\], the optimizer's"):
        by_index(fewer, model, optimizer, "ckpt/optimizer.pt")
    renamed = {
        "state": {k.replace(".a.", ".z."): v for k, v in named["state"].items()},
        "param_groups": [
            {**g, "params": [p.replace(".a.", ".z.") for p in g["params"]]}
            for g in named["param_groups"]
        ],
    }
    with pytest.raises(ConfigError, match=r"ckpt/optimizer.pt .*unknown parameter '.*\.z\."):
        by_index(renamed, model, optimizer, "ckpt/optimizer.pt")
