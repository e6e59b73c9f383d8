"""Parameter counts and saved adapters of the reference library on a tiny model of every family.

Run from the repository root, inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/make_family_fixtures.py

It writes into ``tests/fixtures/reference/``:

* ``family_counts.json``: for each model family below (the ones ``param_counts.json`` lacks) and
  each identifier of ``make_fixtures.py``, what ``add_adapter`` + ``train_adapter`` gave (trainable
  parameters, saved numbers, saved keys for a few identifiers) or which stage raised, then one
  forward pass on the family's inputs;
* ``families/<model>/base/``: the base model (``save_pretrained``, safetensors, eager attention),
  and ``families/<model>/<case>/``: ``save_adapter`` of lora, seq_bn and prefix_tuning with every
  adapter parameter perturbed by seeded noise, plus ``outputs.safetensors`` (the model's outputs
  with the adapter active, eval mode) and, in ``base/``, the outputs without adapters.

Models are tiny (hidden size 32, 2 layers) and built from config objects: nothing is downloaded.
Eager attention throughout: with transformers 4.57 the reference's sdpa path mishandles the
attention mask for prefix tuning. The output is deterministic.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import adapters
import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import EXTRA_IDENTIFIERS, SEED_IDENTIFIERS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reference"
OUT_DIR = FIXTURES / "families"
SEED = 1234
NOISE = 0.1
NAME = "a"
VERSIONS = {
    "adapters": adapters.__version__,
    "transformers": transformers.__version__,
    "torch": torch.__version__.split("+")[0],
}

_BERTLIKE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    vocab_size=99,
    max_position_embeddings=64,
)
_BARTLIKE = dict(
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=37,
    decoder_ffn_dim=37,
    vocab_size=99,
    max_position_embeddings=64,
)
_T5 = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, vocab_size=99)
_DECODER = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    intermediate_size=37,
    vocab_size=99,
    max_position_embeddings=64,
)
_VISION = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    image_size=16,
    patch_size=8,
)
_CLIP_TEXT = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    vocab_size=99,
    max_position_embeddings=16,
)

#: name → (config class, model class, config kwargs, input kind). The name is the HF model_type.
MODELS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "distilbert": (
        "DistilBertConfig",
        "DistilBertModel",
        dict(
            dim=32, n_layers=2, n_heads=4, hidden_dim=37, vocab_size=99, max_position_embeddings=64
        ),
        "text",
    ),
    "albert": (
        "AlbertConfig",
        "AlbertModel",
        dict(_BERTLIKE, embedding_size=16),
        "text",
    ),
    "electra": ("ElectraConfig", "ElectraModel", dict(_BERTLIKE, embedding_size=16), "text"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", _BERTLIKE, "text"),
    "bert-generation": ("BertGenerationConfig", "BertGenerationEncoder", _BERTLIKE, "text"),
    "xmod": (
        "XmodConfig",
        "XmodModel",
        dict(_BERTLIKE, languages=["en_XX", "de_DE"], default_language="en_XX"),
        "text",
    ),
    "deberta": ("DebertaConfig", "DebertaModel", _BERTLIKE, "text"),
    "deberta-v2": ("DebertaV2Config", "DebertaV2Model", _BERTLIKE, "text"),
    "mbart": ("MBartConfig", "MBartModel", _BARTLIKE, "seq2seq"),
    "plbart": ("PLBartConfig", "PLBartModel", _BARTLIKE, "seq2seq"),
    "t5": ("T5Config", "T5Model", _T5, "seq2seq"),
    "mt5": ("MT5Config", "MT5Model", _T5, "seq2seq"),
    "gptj": (
        "GPTJConfig",
        "GPTJModel",
        dict(n_embd=32, n_layer=2, n_head=4, rotary_dim=4, vocab_size=99, n_positions=64),
        "text",
    ),
    "vit": ("ViTConfig", "ViTModel", _VISION, "image"),
    "beit": ("BeitConfig", "BeitModel", dict(_VISION, vocab_size=99), "image"),
    "whisper": (
        "WhisperConfig",
        "WhisperModel",
        dict(
            _BARTLIKE,
            num_mel_bins=8,
            max_source_positions=16,
            max_target_positions=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
        "audio",
    ),
    "clip": (
        "CLIPConfig",
        "CLIPModel",
        dict(text_config=_CLIP_TEXT, vision_config=_VISION, projection_dim=16),
        "text+image",
    ),
    "clip_text_model": ("CLIPTextConfig", "CLIPTextModel", _CLIP_TEXT, "text"),
    "clip_vision_model": ("CLIPVisionConfig", "CLIPVisionModel", _VISION, "image"),
    "encoder-decoder": ("EncoderDecoderConfig", "EncoderDecoderModel", _BERTLIKE, "seq2seq"),
    "modernbert": (
        "ModernBertConfig",
        "ModernBertModel",
        dict(
            _BERTLIKE,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            cls_token_id=1,
            sep_token_id=2,
        ),
        "text",
    ),
    "gemma2": ("Gemma2Config", "Gemma2Model", _DECODER, "text"),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3TextModel", _DECODER, "text"),
    "qwen3": ("Qwen3Config", "Qwen3Model", _DECODER, "text"),
    "phi": (
        "PhiConfig",
        "PhiModel",
        {k: v for k, v in _DECODER.items() if k not in ("head_dim", "num_key_value_heads")},
        "text",
    ),
}

#: Identifiers whose saved keys are recorded (the state-dict names per family).
KEY_IDENTIFIERS = {
    "seq_bn",
    "double_seq_bn[cross_adapter=True]",
    "seq_bn_inv",
    "lora[intermediate_lora=True,output_lora=True]",
    "prefix_tuning",
    "prompt_tuning",
    "loreft",
}
#: directory → config of the saved-adapter cases (a small prefix MLP keeps the files small).
CHECKPOINT_CASES = {
    "lora": "lora",
    "seq_bn": "seq_bn",
    "prefix_tuning": "prefix_tuning[bottleneck_size=16]",
    "vera": "vera",
}
#: Cases recorded only on some models: the encoder-decoder model's reference registers shared
#: parameters (VeRA's random matrices) on the model and on both halves (one tensor, three names).
CHECKPOINT_ONLY_ON = {"vera": {"encoder-decoder"}}

INPUT_IDS = [[5, 17, 42, 8, 91, 33, 60], [7, 25, 64, 12, 50, 0, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
DECODER_INPUT_IDS = [[2, 14, 77, 9, 30, 45], [2, 61, 3, 88, 19, 26]]


def make_config(name: str, eager: bool = True) -> Any:
    config_cls, _, kwargs, _ = MODELS[name]
    attn = {"attn_implementation": "eager"} if eager else {}
    if name == "encoder-decoder":
        enc = transformers.BertConfig(**kwargs, **attn)
        dec = transformers.BertConfig(**kwargs, is_decoder=True, add_cross_attention=True, **attn)
        config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
        config.decoder_start_token_id = 2
        config.pad_token_id = 0
        return config
    config = getattr(transformers, config_cls)(**kwargs, **attn)
    return config


def build_base(name: str) -> torch.nn.Module:
    _, model_cls, _, _ = MODELS[name]
    config = make_config(name)
    torch.manual_seed(SEED)
    net = getattr(transformers, model_cls)(config)
    # Non-trivial norm parameters, so that norm placement matters.
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for key, param in sorted(net.named_parameters()):
            if "norm" in key.lower():
                param.add_(torch.randn(param.shape, generator=gen) * 0.2)
    return net.eval()


def inputs(name: str) -> dict[str, torch.Tensor]:
    kind = MODELS[name][3]
    gen = torch.Generator().manual_seed(SEED + 2)
    batch: dict[str, torch.Tensor] = {}
    if "text" in kind or kind == "seq2seq":
        batch["input_ids"] = torch.tensor(INPUT_IDS)
        batch["attention_mask"] = torch.tensor(ATTENTION_MASK)
    if "image" in kind:
        batch["pixel_values"] = torch.randn(2, 3, 16, 16, generator=gen)
    if kind == "audio":
        batch["input_features"] = torch.randn(2, 8, 32, generator=gen)
    if kind in ("seq2seq", "audio"):
        batch["decoder_input_ids"] = torch.tensor(DECODER_INPUT_IDS)
    return batch


OUTPUT_FIELDS = ("last_hidden_state", "logits", "text_embeds", "image_embeds")


def outputs(net: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = net(**inputs(name))
    return {
        k: getattr(out, k).detach().contiguous()
        for k in OUTPUT_FIELDS
        if getattr(out, k, None) is not None
    }


_MARKERS = (
    "_adapters.",
    ".adapters.",
    "prefix_tunings.",
    "prefix_gates.",
    "loras.",
    "refts.",
    "prompt_tunings.",
    "shared_parameters.",
)


def _is_adapter_param(key: str) -> bool:
    return any(f".{m}{NAME}." in f".{key}" or f"{m}{NAME}." in key for m in _MARKERS)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _message(exc: BaseException) -> str:
    # Object reprs carry memory addresses; drop them so that the output is reproducible.
    return _ADDRESS.sub("", " ".join(str(exc).split()))[:300]


def measure(name: str, ident: str) -> dict[str, Any]:
    torch.manual_seed(SEED)
    net = getattr(transformers, MODELS[name][1])(make_config(name))
    adapters.init(net)
    base_numel = sum(p.numel() for p in net.parameters())
    stage = "add"
    entry: dict[str, Any] = {}
    try:
        net.add_adapter(NAME, config=ident)
        entry["added_params"] = sum(p.numel() for p in net.parameters()) - base_numel
        stage = "train_adapter"
        net.train_adapter(NAME)
        entry["trainable"] = sum(p.numel() for p in net.parameters() if p.requires_grad)
        stage = "save"
        with tempfile.TemporaryDirectory() as tmp:
            net.save_adapter(tmp, NAME)
            state = torch.load(
                os.path.join(tmp, "pytorch_adapter.bin"), map_location="cpu", weights_only=True
            )
        entry["saved"] = sum(t.numel() for t in state.values())
        if ident in KEY_IDENTIFIERS:
            entry["saved_keys"] = {k: list(t.shape) for k, t in state.items()}
        stage = "forward"
        net.eval()
        outputs(net, name)
    except Exception as exc:
        entry["error"] = {"stage": stage, "type": type(exc).__name__, "message": _message(exc)}
    return entry


def record_checkpoints(name: str, manifest: dict[str, Any]) -> None:
    base_dir = OUT_DIR / name / "base"
    net = build_base(name)
    net.save_pretrained(str(base_dir))
    save_file(outputs(net, name), str(base_dir / "outputs.safetensors"))
    cases: dict[str, Any] = {}
    for index, (case_dir, case) in enumerate(CHECKPOINT_CASES.items()):
        if name not in CHECKPOINT_ONLY_ON.get(case_dir, {name}):
            continue
        entry: dict[str, Any] = {"config": case, "dir": case_dir}
        model = build_base(name)
        adapters.init(model)
        stage = "add"
        try:
            model.add_adapter(NAME, config=case)
            stage = "perturb"
            gen = torch.Generator().manual_seed(SEED + 100 * (index + 1))
            with torch.no_grad():
                for key, param in sorted(model.named_parameters()):
                    if _is_adapter_param(key):
                        param.add_(torch.randn(param.shape, generator=gen) * NOISE)
            model.set_active_adapters(NAME)
            model.eval()
            stage = "forward"
            tensors = outputs(model, name)
            # Base-model tensors that adapters.init created (the random bias it gives bias-less
            # fused projections), so that a test can put the same ones into its model.
            base_keys = set(net.state_dict())
            for key, value in model.state_dict().items():
                # (Not the word embeddings that the prompt-tuning layer holds a second time.)
                if key.endswith("prompt_tuning.base_model_embeddings.weight"):
                    continue
                if key not in base_keys and not _is_adapter_param(key):
                    tensors[f"init_added.{key}"] = value.detach().clone().contiguous()
            stage = "save"
            target = OUT_DIR / name / case_dir
            model.save_adapter(str(target), NAME)
            save_file(tensors, str(target / "outputs.safetensors"))
        except Exception as exc:
            shutil.rmtree(OUT_DIR / name / case_dir, ignore_errors=True)
            entry["error"] = {"stage": stage, "type": type(exc).__name__, "message": _message(exc)}
        cases[case_dir] = entry
    manifest["models"][name] = {
        "config_class": MODELS[name][0],
        "model_class": MODELS[name][1],
        "inputs": MODELS[name][3],
        "cases": cases,
    }


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    only = sys.argv[1:] or list(MODELS)
    identifiers = SEED_IDENTIFIERS + EXTRA_IDENTIFIERS
    counts_path = FIXTURES / "family_counts.json"
    counts: dict[str, Any] = (
        json.loads(counts_path.read_text())
        if counts_path.exists() and sys.argv[1:]
        else {
            "description": (
                "Per tiny model (eager attention) and adapter config string: fresh model (torch "
                "seed fixed), adapters.init(model), add_adapter, train_adapter, save_adapter, "
                "then one eval forward on the family's inputs. Fields as in param_counts.json. "
                "See scripts/reference/make_family_fixtures.py."
            ),
            "generator": "scripts/reference/make_family_fixtures.py",
            "versions": VERSIONS,
            "adapter_name": NAME,
            "identifiers": identifiers,
            "models": {},
            "results": {},
        }
    )
    manifest_path = OUT_DIR / "manifest.json"
    manifest: dict[str, Any] = (
        json.loads(manifest_path.read_text())
        if manifest_path.exists() and sys.argv[1:]
        else {"versions": VERSIONS, "adapter_name": NAME, "models": {}}
    )
    if not sys.argv[1:] and OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    for name in only:
        config_cls, model_cls, kwargs, kind = MODELS[name]
        counts["models"][name] = {
            "config_class": config_cls,
            "model_class": model_cls,
            "kwargs": kwargs,
            "inputs": kind,
        }
        counts["results"][name] = {ident: measure(name, ident) for ident in identifiers}
        shutil.rmtree(OUT_DIR / name, ignore_errors=True)
        record_checkpoints(name, manifest)
        print(name, "done", file=sys.stderr, flush=True)
    order = [m for m in MODELS if m in counts["models"]]
    counts["models"] = {m: counts["models"][m] for m in order}
    counts["results"] = {m: counts["results"][m] for m in order}
    manifest["models"] = {m: manifest["models"][m] for m in MODELS if m in manifest["models"]}
    counts_path.write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
