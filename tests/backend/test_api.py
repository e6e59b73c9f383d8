"""Public backend API: save/load, activation, training, summary, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl import load  # noqa: E402
from adapter_dsl.backend import (  # noqa: E402
    adapter_summary,
    add_adapter,
    delete_adapter,
    format_summary,
    list_adapters,
    load_adapter,
    merge_adapter,
    save_adapter,
    set_active,
    train_adapter,
)
from adapter_dsl.backend.state import peek_state  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402
from tests.backend.conftest import make_model, run  # noqa: E402
from tests.backend.test_bottleneck import _signature  # noqa: E402


def _trained(kind: str, ident: str = "double_seq_bn_inv", **kw: Any) -> Any:
    model = make_model(kind)
    add_adapter(model, "task", load(ident, **kw))
    with torch.no_grad():
        for p in peek_state(model).adapters["task"].parameters():
            p.uniform_(-0.3, 0.3)
    set_active(model, "task")
    return model


@pytest.mark.parametrize(
    ("kind", "ident", "kw"),
    [
        ("bert", "double_seq_bn_inv", {}),
        ("gpt2", "scaled_par_bn", {}),
        ("bart", "double_seq_bn", {"cross_adapter": True}),
        ("llama", "compacter", {"reduction_factor": 8}),
    ],
)
def test_save_then_load_into_fresh_model_reproduces_outputs(
    tmp_path: Path, kind: str, ident: str, kw: dict[str, Any]
) -> None:
    model = _trained(kind, ident, **kw)
    expected = run(model, kind)
    out = save_adapter(model, "task", tmp_path / "task")
    envelope = json.loads((out / "adapter_config.json").read_text())
    assert envelope["name"] == "task" and envelope["model_type"] == kind
    assert envelope["hidden_size"] == 32 and envelope["version"].startswith("adapter_dsl.")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",  # the model card
        "adapter_config.json",
        "adapter_model.safetensors",
    ]

    fresh = make_model(kind)
    assert not torch.allclose(run(fresh, kind), expected)
    assert load_adapter(fresh, out) == "task"
    assert torch.equal(run(fresh, kind), expected)

    renamed = make_model(kind)
    assert load_adapter(renamed, out, load_as="other") == "other"
    assert torch.equal(run(renamed, kind), expected)


def test_saved_keys_are_the_reference_keys(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = _trained("bert", "compacter", reduction_factor=8)
    out = save_adapter(model, "task", tmp_path / "c")
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "encoder.layer.0.attention.output.adapters.task.adapter_down.0.W_left" in keys
    assert "encoder.layer.1.output.adapters.task.adapter_up.b" in keys
    assert "shared_parameters.task.phm_rule" in keys
    assert len(keys) == 4 * 6 + 1  # 4 PHM modules × (W_left, W_right, b) × (down, up) + rule


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    model = _trained("gpt2", "seq_bn")
    target = tmp_path / "a"
    save_adapter(model, "task", target)
    (target / "stale.txt").write_text("x")
    save_adapter(model, "task", target)
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary directories left


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage", ["truncated", "shape", "model_type", "missing_weights", "bad_json", "extra_key"]
)
def test_bad_checkpoints_fail_cleanly_with_model_untouched(tmp_path: Path, damage: str) -> None:
    from safetensors.torch import load_file, save_file

    source = _trained("bert", "seq_bn")
    out = save_adapter(source, "task", tmp_path / "ck")
    weights, cfg_file = out / "adapter_model.safetensors", out / "adapter_config.json"
    envelope = json.loads(cfg_file.read_text())
    if damage == "truncated":
        _corrupt(weights)
    elif damage == "shape":
        envelope["config"]["reduction_factor"] = 8
        cfg_file.write_text(json.dumps(envelope))
    elif damage == "model_type":
        envelope["model_type"] = "gpt2"
        cfg_file.write_text(json.dumps(envelope))
    elif damage == "missing_weights":
        weights.unlink()
    elif damage == "bad_json":
        cfg_file.write_text("{not json")
    else:
        tensors = load_file(str(weights))
        tensors["encoder.layer.0.output.adapters.task.bogus"] = torch.zeros(1)
        save_file(tensors, str(weights))

    target = make_model("bert")
    add_adapter(target, "keep", load("par_bn"), set_active=True)
    sig, out_before = _signature(target), run(target, "bert")
    rng = torch.get_rng_state()
    with pytest.raises(ConfigError):
        load_adapter(target, out)
    assert _signature(target) == sig
    assert torch.equal(run(target, "bert"), out_before)
    assert list_adapters(target) == ["keep"] and peek_state(target).active == ("keep",)
    assert torch.equal(torch.get_rng_state(), rng)


def test_unsupported_model_type_raises_before_touching(tmp_path: Path) -> None:
    import transformers

    model = transformers.SqueezeBertModel(
        transformers.SqueezeBertConfig(
            hidden_size=32,
            embedding_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=36,
            vocab_size=99,
        )
    )
    sig = _signature(model)
    with pytest.raises(ConfigError) as info:
        add_adapter(model, "a", load("seq_bn"))
    assert "squeezebert" in str(info.value) and "distilbert" in str(info.value)
    assert "register_model_type" in str(info.value)
    assert _signature(model) == sig


def test_unsupported_method_names_method_and_model() -> None:
    model = make_model("gpt2")
    sig = _signature(model)
    with pytest.raises(ConfigError) as info:
        add_adapter(model, "p", load("prompt_tuning"))
    assert "prompt_tuning" in str(info.value) and "gpt2" in str(info.value)
    assert _signature(model) == sig and peek_state(model) is None


def test_unknown_and_duplicate_names() -> None:
    model = make_model("bert")
    add_adapter(model, "sentiment", load("seq_bn"))
    with pytest.raises(ConfigError) as info:
        set_active(model, "sentimnet")
    assert "did you mean 'sentiment'" in str(info.value)
    with pytest.raises(ConfigError):
        add_adapter(model, "sentiment", load("seq_bn"))
    with pytest.raises(ConfigError):
        add_adapter(model, "a.b", load("seq_bn"))
    with pytest.raises(ConfigError):
        delete_adapter(model, "nope")


def test_train_adapter_freezes_everything_else_and_summary() -> None:
    model = make_model("bert")
    add_adapter(model, "a", load("seq_bn"))
    add_adapter(model, "b", load("par_bn"))
    train_adapter(model, "b")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".adapters.b." in n for n in trainable)
    assert peek_state(model).active == ("b",) and model.training
    rows = {r["name"]: r for r in adapter_summary(model)}
    assert rows["a"]["parameters"] == 324 and rows["b"]["parameters"] == 2144
    assert (rows["a"]["method"], rows["a"]["config"]) == ("SeqBnConfig", "seq_bn")
    assert rows["b"]["families"] == ["bottleneck"]
    base = sum(p.numel() for n, p in model.named_parameters() if ".adapters." not in n)
    assert rows["b"]["share_percent"] == pytest.approx(100 * 2144 / base)
    assert rows["b"]["active"] and not rows["a"]["active"]
    table = format_summary(model).splitlines()
    assert len(table) == 3 and table[2].split()[:3] == ["b", "ParBnConfig", "2144"]

    # Switching the trained adapter re-freezes the previous one.
    train_adapter(model, ["a"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".adapters.a." in n for n in trainable)


def test_summary_counts_unions_shared_tensors_and_kept_frozen_ones() -> None:
    model = make_model("bert")
    assert adapter_summary(model) == []
    add_adapter(model, "u", "seq_bn[leave_out=[0]]|seq_bn[leave_out=[1]]")
    add_adapter(model, "c", "compacter[reduction_factor=8, learn_phm=False]")
    train_adapter(model, "c")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "shared_parameters.c.phm_rule" not in trainable  # learn_phm=False stays frozen
    assert trainable and all(".adapters.c." in n for n in trainable)
    rows = {r["name"]: r for r in adapter_summary(model)}
    assert rows["u"]["parameters"] == 324 and rows["u"]["families"] == ["bottleneck"] * 2
    assert rows["u"]["method"] == "ConfigUnion"
    assert rows["c"]["parameters"] == 496 - 64  # the frozen (4, 4, 4) rule is not counted
    assert rows["c"]["parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_add_adapter_accepts_strings_dicts_paths_and_objects(tmp_path: Path) -> None:
    expected = load("seq_bn", reduction_factor=8)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(expected.to_dict()))
    envelope = tmp_path / "adapter_config.json"
    envelope.write_text(
        json.dumps({"config": expected.to_dict(), "name": "x", "version": "adapters.1.3.0"})
    )
    specs = [
        expected,
        "seq_bn[reduction_factor=8]",
        expected.to_dict(),
        {"config": expected.to_dict(), "version": "adapters.1.3.0"},
        plain,
        str(plain),
        envelope,
    ]
    model = make_model("bert")
    for i, spec in enumerate(specs):
        assert add_adapter(model, f"a{i}", spec) == expected
    with pytest.raises(ConfigError):
        add_adapter(model, "n", None)
    with pytest.raises(ConfigError):
        add_adapter(model, "o", object())
    with pytest.raises(ConfigError) as info:
        add_adapter(model, "s", "seq_bn[reduction_factr=8]")
    assert "reduction_factor" in str(info.value)  # the config layer's suggestion
    assert list_adapters(model) == [f"a{i}" for i in range(len(specs))]


def test_load_adapter_validates_reference_envelopes_with_fixups(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    source = make_model("bert")
    add_adapter(source, "task", "seq_bn[non_linearity='gelu_new']", set_active=True)
    with torch.no_grad():
        for p in peek_state(source).adapters["task"].parameters():
            p.uniform_(-0.3, 0.3)
    expected = run(source, "bert")
    out = save_adapter(source, "task", tmp_path / "ours")

    # The reference's layout: unversioned envelope, torch .bin weights, "gelu" meaning gelu_new.
    ref = tmp_path / "ref"
    ref.mkdir()
    config = load("seq_bn").to_dict() | {"non_linearity": "gelu"}
    (ref / "adapter_config.json").write_text(
        json.dumps({"config": config, "model_type": "bert", "name": "task", "hidden_size": 32})
    )
    torch.save(load_file(str(out / "adapter_model.safetensors")), ref / "pytorch_adapter.bin")
    fresh = make_model("bert")
    assert load_adapter(fresh, ref) == "task"
    assert peek_state(fresh).adapters["task"].config.non_linearity == "gelu_new"
    assert torch.equal(run(fresh, "bert"), expected)


def test_invalid_saved_config_is_reported_at_its_line(tmp_path: Path) -> None:
    source = _trained("bert", "seq_bn")
    out = save_adapter(source, "task", tmp_path / "ck")
    cfg_file = out / "adapter_config.json"
    cfg_file.write_text(
        cfg_file.read_text().replace('"reduction_factor": 16', '"reduction_factor": -1')
    )
    target = make_model("bert")
    with pytest.raises(ConfigError) as info:
        load_adapter(target, out)
    where = info.value.problems[0].location
    assert where.path == ("config", "reduction_factor")
    assert where.file is not None and where.file.endswith("adapter_config.json")
    assert (
        where.line is not None
        and '"reduction_factor": -1' in cfg_file.read_text().splitlines()[where.line - 1]
    )
    assert peek_state(target) is None


def test_bottleneck_adapters_cannot_be_merged() -> None:
    model = make_model("bert")
    add_adapter(model, "a", load("seq_bn"))
    with pytest.raises(ConfigError) as info:
        merge_adapter(model, "a")
    assert "merge" in str(info.value)


def test_importing_adapter_dsl_does_not_import_torch() -> None:
    code = "import sys, adapter_dsl, adapter_dsl.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
