"""Training an AdapterFusion with AdapterTrainer: the loss falls, the fused adapters do not move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (dev extra)")

from adapter_dsl.backend import add_adapter, add_fusion  # noqa: E402
from adapter_dsl.backend.training import AdapterTrainer  # noqa: E402
from adapter_dsl.demo import tiny_classifier  # noqa: E402
from tests.backend.test_training import SyntheticTask, _args, _snapshot  # noqa: E402


def test_fusion_training_improves_the_loss_and_keeps_the_adapters(tmp_path: Path) -> None:
    model = tiny_classifier(seed=0)
    add_adapter(model, "a", "seq_bn[reduction_factor=2]")
    add_adapter(model, "b", "seq_bn[reduction_factor=4, non_linearity='gelu']")
    with torch.no_grad():  # non-trivial adapters to fuse
        gen = torch.Generator().manual_seed(0)
        for key, p in sorted(model.named_parameters()):
            if ".adapters." in key:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    add_fusion(model, ["a", "b"], "dynamic")
    before = _snapshot(model)
    trainer = AdapterTrainer(
        model, _args(tmp_path), fusion="Fuse(a, b)", train_dataset=SyntheticTask()
    )
    assert trainer.adapter_names == () and trainer.fusion_names == ("a,b",)
    trainer.train()

    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert sum(losses[-2:]) / 2 < 0.85 * sum(losses[:2]) / 2, losses
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(".adapter_fusion_layer.a,b." in k for k in changed)
    assert all(".adapter_fusion_layer.a,b." in k or k.startswith("classifier.") for k in changed)
    # The fused adapters are bit-identical.
    assert all(torch.equal(before[k], after[k]) for k in before if ".adapters." in k)
    ckpt = tmp_path / "checkpoint-40"
    assert (ckpt / "a,b" / "adapter_fusion_config.json").is_file()


def _fused(seed: int = 0) -> Any:
    model = tiny_classifier(seed=0, dropout=0.0)
    add_adapter(model, "a", "seq_bn[reduction_factor=2]")
    add_adapter(model, "b", "seq_bn[reduction_factor=4]")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for key, p in sorted(model.named_parameters()):
            if ".adapters." in key:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    add_fusion(model, ["a", "b"], "dynamic")
    return model


def test_resuming_fusion_training_restores_the_fusion_weights(tmp_path: Path) -> None:
    data = SyntheticTask(64)
    full = _fused()
    AdapterTrainer(
        full,
        _args(tmp_path / "a", max_steps=6, save_steps=3),
        fusion="Fuse(a, b)",
        train_dataset=data,
    ).train()
    resumed = _fused()
    trainer = AdapterTrainer(
        resumed,
        _args(tmp_path / "b", max_steps=6, save_steps=6),
        fusion="Fuse(a, b)",
        train_dataset=data,
    )
    fusion = [id(p) for n, p in resumed.named_parameters() if ".adapter_fusion_layer." in n]
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))
    assert trainer.state.global_step == 6
    # Copied in place: the optimizer's parameters are the fusion's own.
    assert [id(p) for n, p in resumed.named_parameters() if ".adapter_fusion_layer." in n] == fusion
    got, want = resumed.state_dict(), full.state_dict()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)


def test_fusion_weights_load_only_into_the_same_fusion(tmp_path: Path) -> None:
    from adapter_dsl.backend import delete_fusion
    from adapter_dsl.backend.fusion_io import load_fusion_weights, save_fusion
    from adapter_dsl.errors import ConfigError

    save_fusion(_fused(seed=1), "a,b", tmp_path / "f")
    model = _fused()
    delete_fusion(model, "a,b")
    with pytest.raises(ConfigError, match=r"holds fusion 'a,b', which is not on the model"):
        load_fusion_weights(model, tmp_path / "f")
    add_fusion(model, ["a", "b"], "static")
    with pytest.raises(ConfigError, match=r"fusion 'a,b' in .* was saved with another config"):
        load_fusion_weights(model, tmp_path / "f")
