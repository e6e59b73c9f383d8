"""Composition blocks, AdapterFusion and average_adapter match the reference (adapters 1.3.0).

Fixtures: ``tests/fixtures/reference/composition`` (``scripts/reference/make_composition.py``):
adapters and fusions saved by the reference on tiny BERT, BART and LLaMA, and its outputs for
each setup (eager attention). Each test loads them with adapter_dsl, activates the same setup
string and compares within 1e-4. Where the reference fails, the test pins what adapter_dsl does
instead (works, with the rows each adapter alone gives, or refuses with a ConfigError).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from adapter_dsl import ConfigError  # noqa: E402
from adapter_dsl.backend import (  # noqa: E402
    average_adapter,
    delete_adapter,
    fusion_regularization_loss,
    load_adapter,
    load_fusion,
    set_active,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
ROOT = FIXTURES / "composition"
BASES = FIXTURES / "checkpoints"
ATOL = 1e-4
MODELS = ("bert", "bart", "llama")
#: Prefixes of different lengths side by side (x1: 4 positions, x2: 3). The reference pads the
#: shorter one and its rows then differ from that adapter alone (by up to 0.79 on LLaMA);
#: adapter_dsl masks the padding, so every row is what its adapter alone gives.
PADDED_PREFIX = {"BatchSplit(x1, x2, batch_sizes=[1, 1])": 1, "Parallel(x1, x2)": 2}


@cache
def manifest() -> dict[str, Any]:
    return dict(json.loads((ROOT / "manifest.json").read_text()))


@cache
def recorded(model: str) -> dict[str, Any]:
    return dict(safetensors_torch.load_file(str(ROOT / model / "outputs.safetensors")))


@cache
def net(model: str) -> Any:
    """The base model with every reference adapter and fusion loaded (shared by the tests)."""
    transformers.logging.set_verbosity_error()
    base = transformers.AutoModel.from_pretrained(
        str(BASES / model / "base"), attn_implementation="eager"
    ).eval()
    for name in manifest()["adapters"]:
        assert load_adapter(base, str(ROOT / model / "adapters" / name)) == name
    for fusion in manifest()["models"][model]["fusions"]:
        load_fusion(base, str(ROOT / model / fusion["dir"]))
    return base


def batch(model: str) -> dict[str, Any]:
    inputs = manifest()["inputs"]
    out = {
        "input_ids": torch.tensor(inputs["input_ids"]),
        "attention_mask": torch.tensor(inputs["attention_mask"]),
    }
    if model == "bart":
        out["decoder_input_ids"] = torch.tensor(inputs["decoder_input_ids (bart)"])
    return out


def run(model: str, setup: Any) -> Any:
    m = net(model)
    set_active(m, setup)
    with torch.no_grad():
        return m(**batch(model)).last_hidden_state


def cases(ok: bool) -> list[tuple[str, dict[str, Any]]]:
    return [
        (model, case)
        for model in MODELS
        for case in manifest()["models"][model]["cases"]
        if ("error" not in case) == ok and case["setup"] not in PADDED_PREFIX
    ]


def single(model: str, name: str) -> Any:
    key = next(c["key"] for c in manifest()["models"][model]["cases"] if c["setup"] == name)
    return recorded(model)[key]


@pytest.mark.parametrize(
    ("model", "case"), cases(ok=True), ids=lambda c: c if isinstance(c, str) else c["setup"]
)
def test_setup_matches_the_reference(model: str, case: dict[str, Any]) -> None:
    expected = recorded(model)[case["key"]]
    got = run(model, case["setup"])
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=ATOL, rtol=0), (got - expected).abs().max()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("setup", sorted(PADDED_PREFIX))
def test_prefixes_of_different_lengths_give_each_row_its_adapter(model: str, setup: str) -> None:
    key = next(c["key"] for c in manifest()["models"][model]["cases"] if c["setup"] == setup)
    reference = recorded(model)[key]
    got = run(model, setup)
    split = PADDED_PREFIX[setup]  # rows [0, split) use x1, the longer prefix
    x1, x2 = single(model, "x1"), single(model, "x2")
    rows = x1.shape[0] if setup.startswith("Parallel") else 1
    assert torch.allclose(got[:split], x1[:rows], atol=ATOL, rtol=0)
    assert torch.allclose(got[split:], x2[-(got.shape[0] - split) :], atol=ATOL, rtol=0)
    # The rows without padding are the reference's; the padded ones are not.
    assert torch.allclose(got[:split], reference[:split], atol=ATOL, rtol=0)
    assert not torch.allclose(got[split:], reference[split:], atol=1e-3)


def test_fixtures_cover_every_block_and_method() -> None:
    setups = {c["setup"] for _, c in cases(ok=True)}
    for block in ("Stack", "Fuse", "Split", "BatchSplit", "Parallel", "Average"):
        assert any(s.startswith(block + "(") for s in setups), block
    assert "Stack(b3, Fuse(b1, b2))" in setups
    # Average is recorded as what the reference computes for k-scaled, unnormalised weights.
    average = next(c for _, c in cases(ok=True) if c["setup"].startswith("Average(b1, b2"))
    assert average["reference_setup"].endswith("normalize_weights=False)")


def test_fusion_regularization_loss_matches() -> None:
    for model in MODELS:
        case = next(c for c in manifest()["models"][model]["cases"] if c["setup"] == "Fuse(b1, b2)")
        got = float(fusion_regularization_loss(net(model)).detach())
        assert got == pytest.approx(case["regularization_loss"], rel=1e-5)


def test_parallel_lora_on_bert_works_where_the_reference_crashes() -> None:
    # The reference replicates q's LoRA input but not k's (RuntimeError); here each half of
    # the k·B rows is what its adapter alone gives.
    ref = next(c for _, c in cases(ok=False) if c["setup"] == "Parallel(l1, l2)")
    assert ref["error"]["type"] == "RuntimeError"
    got = run("bert", "Parallel(l1, l2)")
    expected = torch.cat([single("bert", "l1"), single("bert", "l2")])
    assert torch.allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_batch_split_across_methods_gives_each_row_its_adapter(model: str) -> None:
    # The reference fails with a TypeError (the LoRA rows have no delta at bottleneck sites).
    got = run(model, "BatchSplit(b1, l1, batch_sizes=[1, 1])")
    assert torch.allclose(got[0], single(model, "b1")[0], atol=ATOL, rtol=0)
    assert torch.allclose(got[1], single(model, "l1")[1], atol=ATOL, rtol=0)


def test_split_that_does_not_fit_the_decoder_is_refused_before_the_forward() -> None:
    m = net("bart")
    set_active(m, "Split(b1, b2, splits=[3, 4])")
    with pytest.raises(ConfigError) as err, torch.no_grad():
        m(**batch("bart"))
    assert "the splits sum to 7, but the decoder's sequence length is 6" in str(err.value)


def test_lora_stack_through_grouped_kv_is_refused_naming_the_module() -> None:
    m = net("llama")
    set_active(m, "l1")
    with pytest.raises(ConfigError) as err:
        set_active(m, "Stack(l1, l2)")
    message = str(err.value)
    assert "layers.0.self_attn.v_proj" in message and "16 wide" in message
    assert m.__dict__["_adapter_dsl_state"].active == ("l1",)  # unchanged


def _average_case(name: str) -> dict[str, Any]:
    return next(a for a in manifest()["models"]["bert"]["averaged"] if a["name"] == name)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["avg_bn", "avg_lora", "avg_negate_b"])
def test_average_adapter_matches_the_reference(model: str, name: str) -> None:
    spec = next(a for a in manifest()["models"][model]["averaged"] if a["name"] == name)
    m = net(model)
    average_adapter(
        m,
        "mine",
        spec["adapters"],
        weights=spec["weights"],
        combine_strategy=spec["combine_strategy"],
        normalize_weights=spec["normalize_weights"],
    )
    try:
        got = run(model, "mine")
    finally:
        delete_adapter(m, "mine")
    expected = recorded(model)[spec["key"]]
    assert torch.allclose(got, expected, atol=ATOL, rtol=0)
    # The reference's averaged adapter loads and gives the same output.
    load_adapter(m, str(ROOT / model / spec["dir"]))
    try:
        assert torch.allclose(run(model, name), expected, atol=ATOL, rtol=0)
    finally:
        delete_adapter(m, name)


def test_svd_average_is_the_truncated_true_delta_not_the_references() -> None:
    # The reference ignores the inputs' scaling α/r and then applies α/svd_rank: its delta is
    # r/svd_rank = 2 times ours. Its saved adapter with B halved must equal ours.
    spec = _average_case("avg_svd")
    m = net("bert")
    average_adapter(
        m,
        "mine",
        spec["adapters"],
        weights=spec["weights"],
        svd_rank=2,
        combine_strategy="lora_delta_w_svd",
    )
    try:
        ours = run("bert", "mine")
    finally:
        delete_adapter(m, "mine")
    reference = recorded("bert")[spec["key"]]
    assert not torch.allclose(ours, reference, atol=1e-3)
    load_adapter(m, str(ROOT / "bert" / spec["dir"]))
    try:
        with torch.no_grad():
            for module in m.modules():
                loras = getattr(module, "loras", None)
                if loras is not None and "avg_svd" in loras:
                    loras["avg_svd"].lora_B.mul_(2 / 4)
        assert torch.allclose(run("bert", "avg_svd"), ours, atol=ATOL, rtol=0)
    finally:
        delete_adapter(m, "avg_svd")


@pytest.mark.parametrize("model", MODELS)
def test_a_setup_the_reference_saved_loads_whole(model: str) -> None:
    from adapter_dsl.backend import load_adapter_setup

    saved = manifest()["models"][model]["saved_setup"]
    fresh = transformers.AutoModel.from_pretrained(
        str(BASES / model / "base"), attn_implementation="eager"
    ).eval()
    node = load_adapter_setup(fresh, ROOT / model / saved["dir"])
    assert str(node) == saved["setup"]
    with torch.no_grad():
        got = fresh(**batch(model)).last_hidden_state
    key = next(
        c["key"] for c in manifest()["models"][model]["cases"] if c["setup"] == saved["setup"]
    )
    assert torch.allclose(got, recorded(model)[key], atol=ATOL, rtol=0)
