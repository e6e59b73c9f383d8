"""PEFT prompt- and prefix-tuning directories load as ``prompt_tuning[before_embeddings=True]``
and ``prefix_tuning[flat=True, shift_positions=True]`` with PeftModel's outputs, on every model
type where PEFT's method runs; ours save back as directories PEFT loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from adapter_dsl import ConfigError, parse  # noqa: E402
from adapter_dsl.backend import add_adapter, load_adapter, save_adapter, set_active  # noqa: E402

from .peft_models import PEFT_FAMILIES, peft_model, peft_outputs  # noqa: E402

#: Where PEFT 0.21's prompt tuning fails on a tiny transformers 5 model of the type: vision and
#: audio towers (no input_ids), CLIP, ALBERT/ELECTRA (factorised embeddings), DistilBERT (no
#: token_dim PEFT can read).
PEFT_CANNOT = {
    "albert",
    "beit",
    "clip",
    "clip_text_model",
    "clip_vision_model",
    "distilbert",
    "electra",
    "vit",
    "whisper",
}
PROMPT_FAMILIES = [f for f in PEFT_FAMILIES if f not in PEFT_CANNOT]
#: Where PEFT 0.21's prefix tuning runs on a tiny transformers 5 model and the type is one
#: stack with position ids (PEFT fails on DeBERTa, ModernBERT, ALBERT and the encoder-decoder
#: types with FEATURE_EXTRACTION; see PEFT_CANNOT for the rest).
PREFIX_FAMILIES = [
    "bert",
    "bert-generation",
    "electra",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gptj",
    "llama",
    "mistral",
    "phi",
    "qwen2",
    "qwen3",
    "roberta",
    "xlm-roberta",
    "xmod",
]


def _peft_prompts(
    family: str, directory: Path, prefix: bool = False, **kw: Any
) -> tuple[Any, Any, dict[str, Any]]:
    base = peft_model(family)
    ours = copy.deepcopy(base)
    with torch.no_grad():
        unadapted = peft_outputs(base, family)
    kind = peft.PrefixTuningConfig if prefix else peft.PromptTuningConfig
    config = kind(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION", **kw)
    model = peft.get_peft_model(base, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "prompt_encoder" in name:
                param.normal_(generator=_gen())
    model.save_pretrained(str(directory))
    return ours, model.eval(), unadapted


def _gen() -> Any:
    return torch.Generator().manual_seed(5)


@pytest.mark.parametrize(
    ("family", "prefix"),
    [*((f, False) for f in PROMPT_FAMILIES), *((f, True) for f in PREFIX_FAMILIES)],
)
def test_peft_prompt_directory_loads(family: str, prefix: bool, tmp_path: Path) -> None:
    ours, reference, unadapted = _peft_prompts(family, tmp_path, prefix)
    assert load_adapter(ours, tmp_path) == "default"
    with torch.no_grad():
        expected = peft_outputs(reference, family)
        got = peft_outputs(ours.eval(), family)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)
        same_shape = got[key].shape == unadapted[key].shape
        assert not same_shape or not torch.allclose(got[key], unadapted[key], atol=1e-4)


SAVED = {
    "prompt": "prompt_tuning[prompt_length=4, before_embeddings=True]",
    "prefix": "prefix_tuning[prefix_length=4, shift_positions=True, bottleneck_size=16]",
    "flat prefix": "prefix_tuning[prefix_length=4, shift_positions=True, flat=True]",
}


@pytest.mark.parametrize(
    ("family", "kind"),
    [("bert", "prompt"), ("llama", "prompt"), ("t5", "prompt")]
    + [(f, k) for f in ("roberta", "llama", "gpt2") for k in ("prefix", "flat prefix")],
)
def test_prompts_we_save_load_in_peft(family: str, kind: str, tmp_path: Path) -> None:
    model = peft_model(family)
    add_adapter(model, "p", SAVED[kind])
    set_active(model, "p")
    if kind == "flat prefix":
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".prefix_tunings.p." in name:
                    param.normal_(generator=_gen())
    save_adapter(model, "p", tmp_path, format="peft")
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    peft_type = "PROMPT_TUNING" if kind == "prompt" else "PREFIX_TUNING"
    assert (data["peft_type"], data["task_type"]) == (peft_type, "FEATURE_EXTRACTION")
    served = peft.PeftModel.from_pretrained(peft_model(family), str(tmp_path)).eval()
    back = peft_model(family)
    load_adapter(back, tmp_path, load_as="p")
    with torch.no_grad():
        expected = peft_outputs(model.eval(), family)
        for other in (served, back.eval()):
            got = peft_outputs(other, family)
            for key in expected:
                torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)


def test_text_init_loads_without_a_tokenizer(tmp_path: Path) -> None:
    # PEFT records how it initialised the prompts; the weights replace them here.
    ours, reference, _ = _peft_prompts("bert", tmp_path)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    data.update(prompt_tuning_init="TEXT", prompt_tuning_init_text="Classify:")
    (tmp_path / "adapter_config.json").write_text(json.dumps(data))
    load_adapter(ours, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(
            peft_outputs(ours.eval(), "bert")["last_hidden_state"],
            peft_outputs(reference, "bert")["last_hidden_state"],
        )


def test_reference_placement_differs_and_is_not_peft() -> None:
    # After the embedding layer (the reference) prompts get no positions or norm: not PEFT's.
    with pytest.raises(ConfigError, match="before the embedding layer") as info:
        from adapter_dsl import to_peft

        to_peft(parse("prompt_tuning"), "bert")
    assert info.value.problems[0].location.path == ("before_embeddings",)
    assert "before_embeddings" not in parse("prompt_tuning").to_dict()
    assert parse("prompt_tuning[before_embeddings=True]").to_dict()["before_embeddings"] is True


def test_before_embeddings_needs_token_embeddings() -> None:
    model = peft_model("vit")
    with pytest.raises(ConfigError, match="token embeddings"):
        add_adapter(model, "p", "prompt_tuning[before_embeddings=True]")


def test_prefixes_need_shifted_positions_for_peft() -> None:
    from adapter_dsl import to_peft

    with pytest.raises(ConfigError, match="positions start at num_virtual_tokens") as info:
        to_peft(parse("prefix_tuning"), "llama")
    assert info.value.problems[0].location.path == ("shift_positions",)
    assert "shift_positions" not in parse("prefix_tuning").to_dict()


def test_shifted_prefixes_need_one_stack_with_positions(tmp_path: Path) -> None:
    model = peft_model("bart")
    keys = set(model.state_dict())
    with pytest.raises(ConfigError, match="single-stack model"):
        add_adapter(model, "p", "prefix_tuning[shift_positions=True]")
    assert set(model.state_dict()) == keys


def test_seq2seq_prompts_for_the_decoder_are_refused(tmp_path: Path) -> None:
    ours, _, _ = _peft_prompts("t5", tmp_path, num_transformer_submodules=2)
    with pytest.raises(ConfigError, match="encoder and a decoder"):
        load_adapter(ours, tmp_path)
