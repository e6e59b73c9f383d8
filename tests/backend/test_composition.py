"""Setups on the model: checks before any forward, fusion training and files, MultiTask, setups
saved and loaded whole (the reference-matching numbers are in test_composition_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl import ConfigError, Fuse, Stack  # noqa: E402
from adapter_dsl.backend import (  # noqa: E402
    add_adapter,
    add_fusion,
    delete_adapter,
    load_adapter_setup,
    load_fusion,
    save_adapter_setup,
    save_fusion,
    set_active,
    train_adapter,
    train_fusion,
)
from adapter_dsl.backend.methods.fusion import fusion_modules  # noqa: E402
from adapter_dsl.backend.state import peek_state  # noqa: E402
from tests.backend.conftest import make_model, model_inputs  # noqa: E402


def run(model: Any, inputs: dict[str, Any], **extra: Any) -> Any:
    with torch.no_grad():
        return model(**inputs, **extra).last_hidden_state


def _qwen2() -> Any:
    import transformers

    cfg = transformers.Qwen2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        vocab_size=99,
    )
    return transformers.Qwen2Model(cfg).eval()


def _randomise(model: Any, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if any(m in key for m in (".adapters.", ".loras.", "adapter_fusion_layer")):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def _bert_with_two(fusion: str | None = "dynamic") -> Any:
    model = make_model("bert").eval()
    add_adapter(model, "a", "seq_bn[reduction_factor=8]")
    add_adapter(model, "b", "seq_bn[reduction_factor=4]")
    add_adapter(model, "l", "lora[r=4]")
    if fusion is not None:
        add_fusion(model, ["a", "b"], fusion)
    _randomise(model)
    return model


def _error(fn: Any, *args: Any) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args)
    return str(err.value)


def test_model_dependent_rules_are_checked_before_any_forward() -> None:
    model = _bert_with_two()
    set_active(model, "a")
    assert "no adapter named 'c'" in _error(set_active, model, "Stack(a, c)")
    msg = _error(set_active, model, "Fuse(a, l)")
    assert "Fuse(a, l)" in msg and "no fusion 'a,l'" in msg
    msg = _error(set_active, model, "Split(l, a, splits=[3, 4])")
    assert "Split blocks are not supported for lora adapters" in msg
    msg = _error(set_active, model, "Average(a, l)")
    assert "children of an Average must reach the same methods" in msg
    # A refused setup leaves the active one as it was.
    assert peek_state(model).active == ("a",)  # type: ignore[union-attr]
    qwen = _qwen2()
    add_adapter(qwen, "a", "seq_bn")
    add_adapter(qwen, "b", "seq_bn")
    assert "Parallel blocks are not supported on 'qwen2' models" in _error(
        set_active, qwen, "Parallel(a, b)"
    )


def test_sizes_are_checked_when_the_forward_starts() -> None:
    model = _bert_with_two()
    set_active(model, "BatchSplit(a, l, batch_sizes=[1, 2])")
    with pytest.raises(ConfigError, match="batch sizes sum to 3, but the batch has 2 rows"):
        run(model, model_inputs("bert"))
    set_active(model, "Split(a, b, splits=3)")
    with pytest.raises(ConfigError, match="splits sum to 6, but the sequence length is 7"):
        run(model, model_inputs("bert"))


def test_blocks_accept_strings_blocks_names_and_lists() -> None:
    model = _bert_with_two()
    inputs = model_inputs("bert")
    set_active(model, Stack("a", "b"))
    stacked = run(model, inputs)
    for spec in ("Stack(a, b)", ["a", "b"]):
        set_active(model, spec)
        torch.testing.assert_close(run(model, inputs), stacked)
    set_active(model, [["a", "b"]])  # the reference's nested list: a Fuse
    torch.testing.assert_close(run(model, inputs), _fused(model, inputs))


def _fused(model: Any, inputs: dict[str, Any]) -> Any:
    set_active(model, Fuse("a", "b"))
    return run(model, inputs)


def test_parallel_returns_k_copies_and_multitask_routes_rows() -> None:
    model = _bert_with_two(fusion=None)
    add_adapter(model, "m", "lora[r=2, alpha=4]")
    _randomise(model, seed=1)
    inputs = model_inputs("bert", batch=3)
    alone = {}
    for name in ("l", "m"):
        set_active(model, name)
        alone[name] = run(model, inputs)
    set_active(model, "Parallel(l, m)")
    out = run(model, inputs)
    assert out.shape[0] == 6
    torch.testing.assert_close(out, torch.cat([alone["l"], alone["m"]]), atol=1e-5, rtol=0)
    set_active(model, "MultiTask(l, m)")
    got = run(model, inputs, task_ids=torch.tensor([1, 0, 1]))
    expected = torch.stack([alone["m"][0], alone["l"][1], alone["m"][2]])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    got = run(model, inputs, task_ids=["m", "l", "m"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="needs task_ids"):
        run(model, inputs)


def test_fusion_temperature_falls_on_every_forward() -> None:
    model = make_model("bert").eval()
    add_adapter(model, "a", "seq_bn")
    add_adapter(model, "b", "seq_bn")
    add_fusion(model, "a,b", "dynamic[temperature=True]")
    set_active(model, "Fuse(a, b)")
    (first, *_) = fusion_modules(model, "a,b")
    assert first.T == 50.0
    for _ in range(3):
        run(model, model_inputs("bert"))
    assert pytest.approx(50.0 - 3 * 0.05) == first.T


def test_train_fusion_trains_only_the_fusion_layers() -> None:
    model = _bert_with_two()
    train_fusion(model, "Fuse(a, b)")
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter_fusion_layer.a,b." in k for k in trainable)
    train_adapter(model, "Stack(a, l)")
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert all(".adapters.a." in k or ".loras.l." in k for k in trainable)
    assert any(".loras.l." in k for k in trainable)
    with pytest.raises(ConfigError, match="no Fuse block"):
        train_fusion(model, "Stack(a, b)")


def test_fusion_files_round_trip_in_both_formats(tmp_path: Path) -> None:
    model = _bert_with_two()
    set_active(model, "Fuse(a, b)")
    expected = run(model, model_inputs("bert"))
    for fmt, weights in (
        ("adapter_dsl", "model_adapter_fusion.safetensors"),
        ("adapters", "pytorch_model_adapter_fusion.bin"),
    ):
        target = save_fusion(model, "a,b", tmp_path / fmt, format=fmt)
        assert {p.name for p in target.iterdir()} == {"adapter_fusion_config.json", weights}
        saved = json.loads((target / "adapter_fusion_config.json").read_text())
        assert saved["adapter_names"] == ["a", "b"] and saved["name"] == "a,b"
        assert saved["config"]["regularization"] is True
        other = _bert_with_two(fusion=None)
        adapters_only = {k: v for k, v in model.state_dict().items() if "fusion" not in k}
        other.load_state_dict(adapters_only)
        assert load_fusion(other, target) == "a,b"
        set_active(other, "Fuse(a, b)")
        torch.testing.assert_close(run(other, model_inputs("bert")), expected)


def test_bad_fusion_file_leaves_the_model_unchanged(tmp_path: Path) -> None:
    model = _bert_with_two()
    target = save_fusion(model, "a,b", tmp_path / "f")
    other = make_model("bert")
    add_adapter(other, "a", "seq_bn[reduction_factor=8]")
    add_adapter(other, "b", "seq_bn[reduction_factor=4]", set_active=True)
    keys = set(other.state_dict())
    from safetensors.torch import load_file, save_file

    weights = target / "model_adapter_fusion.safetensors"
    tensors = load_file(str(weights))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(weights))
    with pytest.raises(ConfigError, match="lacks 1 of the fusion's tensors"):
        load_fusion(other, target)
    assert set(other.state_dict()) == keys
    assert peek_state(other).fusions == {}  # type: ignore[union-attr]


def test_deleting_a_fused_adapter_removes_the_fusion() -> None:
    model = make_model("bert")
    keys = set(model.state_dict())
    add_adapter(model, "a", "seq_bn")
    add_adapter(model, "b", "seq_bn")
    add_fusion(model, ["a", "b"])
    set_active(model, "Fuse(a, b)")
    delete_adapter(model, "a")
    assert not any("adapter_fusion_layer" in k for k in model.state_dict())
    delete_adapter(model, "b")
    assert set(model.state_dict()) == keys
    assert peek_state(model) is None


def test_adapter_setup_saves_and_loads_whole(tmp_path: Path) -> None:
    model = _bert_with_two()
    set_active(model, "Stack(l, Fuse(a, b))")
    expected = run(model, model_inputs("bert"))
    target = save_adapter_setup(model, tmp_path / "setup")
    assert {p.name for p in target.iterdir()} == {"a", "b", "l", "a,b", "adapter_setup.json"}
    payload = json.loads((target / "adapter_setup.json").read_text())
    assert payload["adapter_setup"] == {
        "type": "Stack",
        "children": [
            {"type": "single", "children": ["l"]},
            {
                "type": "Fuse",
                "children": [
                    {"type": "single", "children": ["a"]},
                    {"type": "single", "children": ["b"]},
                ],
            },
        ],
    }
    fresh = make_model("bert").eval()
    node = load_adapter_setup(fresh, target)
    assert str(node) == "Stack(l, Fuse(a, b))"
    torch.testing.assert_close(run(fresh, model_inputs("bert")), expected)
    # A second load fails (the names exist) and leaves the model as it was.
    keys = set(fresh.state_dict())
    with pytest.raises(ConfigError):
        load_adapter_setup(fresh, target)
    assert set(fresh.state_dict()) == keys


def test_mtl_lora_routes_rows_by_task_and_round_trips(tmp_path: Path) -> None:
    from adapter_dsl.backend import load_adapter, merge_adapter, save_adapter, unmerge_adapter

    model = make_model("bert").eval()
    cfg = "mtl_lora[r=4, n_up_projection=2, task_specific_matrix_type='linear']"
    add_adapter(model, "t0", cfg)
    add_adapter(model, "t1", "mtl_lora[r=4, n_up_projection=3]")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if ".loras." in key:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    query = model.encoder.layer[0].attention.self.query
    unit = query.loras["t0"]
    assert tuple(unit.lora_B.shape) == (2, 32, 4) and tuple(unit.task_specific.values.shape) == (
        4,
        4,
    )
    set_active(model, "t0")
    x = torch.randn(2, 5, 32)
    mix = torch.softmax(unit.weights / 0.05, dim=0)
    low = x @ unit.lora_A.t() @ unit.task_specific.values
    delta = sum(mix[k] * low @ unit.lora_B[k].t() for k in range(2))
    torch.testing.assert_close(query(x), query.original(x) + delta * (8 / 4))

    inputs = model_inputs("bert", batch=3)
    alone = {}
    for name in ("t0", "t1"):
        set_active(model, name)
        alone[name] = run(model, inputs)
    set_active(model, "MultiTask(t0, t1)")
    got = run(model, inputs, task_ids=torch.tensor([1, 1, 0]))
    expected = torch.stack([alone["t1"][0], alone["t1"][1], alone["t0"][2]])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    save_adapter(model, "t0", tmp_path / "t0")
    fresh = make_model("bert").eval()
    assert load_adapter(fresh, tmp_path / "t0") == "t0"
    torch.testing.assert_close(run(fresh, inputs), alone["t0"])
    merge_adapter(fresh, "t0")
    torch.testing.assert_close(run(fresh, inputs), alone["t0"], atol=1e-5, rtol=0)
    unmerge_adapter(fresh, "t0")


REF_PYTHON = Path(__file__).resolve().parents[2] / ".venv-ref" / "bin" / "python"
REF_FUSION_CHECK = """
import sys, torch, transformers, adapters
from adapters.composition import Fuse
base, d = sys.argv[1], sys.argv[2]
m = transformers.BertModel.from_pretrained(base).eval()
adapters.init(m)
for n in "ab":
    m.load_adapter(f"{d}/{n}")
m.load_adapter_fusion(f"{d}/a,b")
m.set_active_adapters(Fuse("a", "b"))
m.eval()
with torch.no_grad():
    out = m(input_ids=torch.load(f"{d}/ids.pt")).last_hidden_state
print("DIFF", float((out - torch.load(f"{d}/out.pt")).abs().max()))
"""


@pytest.mark.skipif(not REF_PYTHON.exists(), reason="needs the reference environment .venv-ref")
def test_the_reference_loads_a_fusion_saved_in_its_format(tmp_path: Path) -> None:
    import subprocess

    import transformers

    base = Path(__file__).resolve().parents[1] / "fixtures/reference/checkpoints/bert/base"
    model = transformers.AutoModel.from_pretrained(str(base)).eval()
    add_adapter(model, "a", "seq_bn[reduction_factor=8]")
    add_adapter(model, "b", "seq_bn[reduction_factor=4]")
    add_fusion(model, ["a", "b"], "dynamic")
    _randomise(model)
    from adapter_dsl.backend import save_adapter

    for name in ("a", "b"):
        save_adapter(model, name, tmp_path / name, format="adapters")
    save_fusion(model, "a,b", tmp_path / "a,b", format="adapters")
    set_active(model, "Fuse(a, b)")
    ids = torch.tensor([[5, 17, 42, 8, 91, 33, 60], [7, 25, 64, 12, 50, 3, 4]])
    torch.save(ids, tmp_path / "ids.pt")
    torch.save(run(model, {"input_ids": ids}), tmp_path / "out.pt")
    proc = subprocess.run(
        [str(REF_PYTHON), "-c", REF_FUSION_CHECK, str(base), str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=300,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DIFF ")]
    assert lines, proc.stderr[-2000:]
    assert float(lines[-1].split()[1]) < 1e-4
