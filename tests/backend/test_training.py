"""Training with the Hugging Face Trainer: AdapterTrainer, checkpoints, resuming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (dev extra)")

from safetensors import safe_open  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

from adapter_dsl.backend import add_adapter, delete_adapter, load_adapter  # noqa: E402
from adapter_dsl.backend.training import (  # noqa: E402
    HEAD_FILE,
    MANIFEST_FILE,
    AdapterTrainer,
    head_parameter_names,
    load_trainable,
    prepare_for_training,
    save_trainable,
)
from adapter_dsl.demo import synthetic_batch, tiny_classifier  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402

ADAPTERS = {"seq_bn": "seq_bn[reduction_factor=2]", "lora": "lora[r=8, alpha=16]"}


class SyntheticTask(Dataset[dict[str, Any]]):
    """``n`` examples of 'does token 5 occur?' (see ``adapter_dsl.demo.synthetic_batch``)."""

    def __init__(self, n: int = 256, seed: int = 0) -> None:
        self.ids, self.labels = synthetic_batch(n, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _args(out: Path, **kw: Any) -> TrainingArguments:
    defaults: dict[str, Any] = {
        "output_dir": str(out),
        "use_cpu": True,
        "report_to": [],
        "disable_tqdm": True,
        "per_device_train_batch_size": 32,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "max_steps": 40,
        "logging_steps": 5,
        "save_strategy": "steps",
        "save_steps": 20,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    defaults.update(kw)
    return TrainingArguments(**defaults)


def _model(method: str, seed: int = 0) -> Any:
    model = tiny_classifier(seed=seed)
    add_adapter(model, "task", ADAPTERS[method])
    return model


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _safetensors_keys(path: Path) -> set[str]:
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("method", sorted(ADAPTERS))
def test_trainer_trains_only_adapter_and_head(tmp_path: Path, method: str) -> None:
    model = _model(method)
    before = _snapshot(model)
    trainer = AdapterTrainer(model, _args(tmp_path), adapters="task", train_dataset=SyntheticTask())
    assert trainer.head_names == ["classifier.weight", "classifier.bias"]
    trainer.train()

    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.85 * sum(losses[:2]) / 2, losses

    after = model.state_dict()
    marker = ".adapters.task." if method == "seq_bn" else ".loras.task."
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing was trained"
    assert all(marker in k or k.startswith("classifier.") for k in changed), sorted(changed)
    assert {"classifier.weight", "classifier.bias"} <= changed
    assert any(marker in k for k in changed)

    # Checkpoints hold the adapter (+ head) and the Trainer's state, no model weights.
    ckpt = tmp_path / "checkpoint-40"
    names = {p.name for p in ckpt.iterdir()}
    assert {"task", HEAD_FILE, MANIFEST_FILE, "trainer_state.json", "optimizer.pt"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin", "config.json"}, names
    assert {p.name for p in (ckpt / "task").iterdir()} == {
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    adapter_keys = _safetensors_keys(ckpt / "task" / "adapter_model.safetensors")
    assert adapter_keys and all(marker in k for k in adapter_keys)
    assert _safetensors_keys(ckpt / HEAD_FILE) == {"classifier.weight", "classifier.bias"}
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())
    assert manifest["adapters"] == ["task"]
    weights = sum(p.stat().st_size for p in ckpt.rglob("*.safetensors"))
    full = sum(t.numel() * t.element_size() for t in after.values())
    assert weights < full / 3

    # The saved adapter + head reproduce the trained model on a fresh copy of the base model.
    fresh = tiny_classifier(seed=0).eval()
    load_trainable(fresh, ckpt)  # adds the adapter (load_adapter) and copies the head
    model.eval()
    ids = SyntheticTask(8, seed=3).ids
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=ids).logits, model(input_ids=ids).logits)


def test_resume_from_checkpoint_continues_the_same_run(tmp_path: Path) -> None:
    data = SyntheticTask()
    full = _model("seq_bn")
    AdapterTrainer(full, _args(tmp_path / "a"), train_dataset=data).train()

    resumed = _model("seq_bn")
    trainer = AdapterTrainer(resumed, _args(tmp_path / "b", save_steps=100), train_dataset=data)
    params = [id(p) for p in resumed.parameters() if p.requires_grad]
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-20"))
    assert trainer.state.global_step == 40
    # The adapter was loaded in place: the trained parameters are the model's own objects.
    assert [id(p) for p in resumed.parameters() if p.requires_grad] == params
    got, want = resumed.state_dict(), full.state_dict()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)


def test_resume_true_picks_the_last_checkpoint_and_save_model_writes_adapter(
    tmp_path: Path,
) -> None:
    model = _model("lora")
    args = _args(tmp_path, max_steps=10, save_steps=5)
    AdapterTrainer(model, args, train_dataset=SyntheticTask(64)).train()
    again = _model("lora")
    trainer = AdapterTrainer(
        again, _args(tmp_path, max_steps=10, save_steps=5), train_dataset=SyntheticTask(64)
    )
    trainer.train(resume_from_checkpoint=True)  # checkpoint-10: nothing left to do
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, msg=key)
    trainer.save_model()
    assert (tmp_path / "task" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "checkpoint-10").is_dir()  # save_model did not replace the output dir
    other = tiny_classifier(seed=0)
    assert load_adapter(other, tmp_path / "task") == "task"


def test_head_selection_and_freezing() -> None:
    model = _model("seq_bn")
    assert head_parameter_names(model) == ["classifier.weight", "classifier.bias"]
    assert head_parameter_names(model, False) == []
    pooler = head_parameter_names(model, ["bert.pooler", "classifier.bias"])
    assert pooler == ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.bias"]
    with pytest.raises(ConfigError, match="no trainable head parameters match 'clasifier'"):
        head_parameter_names(model, "clasifier")

    names, head = prepare_for_training(model, head="bert.pooler")
    assert names == ("task",)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if ".adapters.task." not in n} == set(head)

    # A tied output embedding belongs to the base model, never to the head.
    from transformers import BertConfig, BertForMaskedLM

    lm = BertForMaskedLM(
        BertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=37,
        )
    )
    add_adapter(lm, "t", "lora")
    head_names = head_parameter_names(lm)
    assert head_names and all(n.startswith("cls.") for n in head_names)
    assert lm.get_output_embeddings().weight is lm.bert.embeddings.word_embeddings.weight
    assert "cls.predictions.decoder.weight" not in head_names


def test_adapter_choice_errors() -> None:
    model = tiny_classifier()
    with pytest.raises(ConfigError, match="cannot tell which adapter"):
        prepare_for_training(model)
    add_adapter(model, "a", "seq_bn")
    add_adapter(model, "b", "lora")
    with pytest.raises(ConfigError, match="cannot tell which adapter"):
        prepare_for_training(model)
    with pytest.raises(ConfigError, match="no adapter named 'c'"):
        prepare_for_training(model, "c")
    assert prepare_for_training(model, ["b"])[0] == ("b",)


def test_load_trainable_checks_before_copying(tmp_path: Path) -> None:
    model = _model("seq_bn")
    prepare_for_training(model, "task")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5)
    save_trainable(model, tmp_path / "ck", ["task"], ["classifier.weight", "classifier.bias"])

    # Same name, another config: refused, nothing copied.
    other = tiny_classifier()
    add_adapter(other, "task", "seq_bn[reduction_factor=4]")
    before = _snapshot(other)
    with pytest.raises(ConfigError, match="saved with another config"):
        load_trainable(other, tmp_path / "ck")
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())

    # A corrupt head file: refused, and the adapter that load_trainable added is gone again.
    (tmp_path / "ck" / HEAD_FILE).write_bytes(b"not safetensors")
    delete_adapter(other, "task")
    with pytest.raises(ConfigError, match="cannot read"):
        load_trainable(other, tmp_path / "ck")
    assert "task" not in {n.split(".")[0] for n in other.state_dict()}
    assert not any(".adapters." in k for k in other.state_dict())

    with pytest.raises(ConfigError, match="not an adapter checkpoint"):
        load_trainable(other, tmp_path)


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("prefix_tuning", {"activation_checkpointing": True}),
        ("seq_bn", {"bf16": True}),
    ],
    ids=["prefix_tuning-checkpointing", "seq_bn-bf16"],
)
def test_trainer_with_checkpointing_or_bf16(
    tmp_path: Path, method: str, extra: dict[str, Any]
) -> None:
    model = tiny_classifier(seed=0)
    add_adapter(model, "task", method)
    before = _snapshot(model)
    args = _args(tmp_path, max_steps=6, save_steps=6, logging_steps=1, **extra)
    trainer = AdapterTrainer(model, args, train_dataset=SyntheticTask(64))
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 6 and all(loss == loss for loss in losses)  # finite, no NaN
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(".prefix_tunings.task." in k or ".adapters.task." in k for k in changed)
    assert all(
        ".prefix_tunings.task." in k or ".adapters.task." in k or k.startswith("classifier.")
        for k in changed
    ), sorted(changed)
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point())


def test_load_best_model_at_end_restores_the_best_adapter(tmp_path: Path) -> None:
    model = _model("seq_bn")
    args = _args(
        tmp_path,
        max_steps=12,
        save_steps=4,
        eval_strategy="steps",
        eval_steps=4,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        learning_rate=0.3,  # too large: the evaluation loss is best at step 4, then worse
    )
    trainer = AdapterTrainer(
        model, args, train_dataset=SyntheticTask(64), eval_dataset=SyntheticTask(64, 9)
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None and (Path(best) / MANIFEST_FILE).is_file()
    assert Path(best).name != "checkpoint-12", "the test needs an earlier best checkpoint"
    reference = tiny_classifier(seed=0)
    load_trainable(reference, best)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
