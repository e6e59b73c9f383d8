"""Save adapters with the real AdapterHub ``adapters`` library, with their outputs.

Run from the repository root, inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/make_checkpoints.py          # everything, afresh
    .venv-ref/bin/python scripts/reference/make_checkpoints.py --add    # only new cases

It writes ``tests/fixtures/reference/checkpoints/``:

* ``<model>/base/``: a tiny base model built from a config object and saved with
  ``save_pretrained`` (safetensors), plus ``outputs.safetensors`` with its ``last_hidden_state``
  (BART: the decoder's) on the fixed batch below;
* ``<model>/<case>/``: what ``model.save_adapter(dir, "a")`` wrote (``adapter_config.json`` and
  ``pytorch_adapter.bin``, or ``adapter.safetensors`` for the cases listed in ``SAFETENSORS``),
  plus ``outputs.safetensors`` holding ``last_hidden_state`` with the adapter active (eval mode)
  and ``unpadded_row_1``: the second (padded) row run alone without its padding and mask, which
  tells padding effects apart from other differences, and ``eager_last_hidden_state``: the same
  adapter on the same model loaded with ``attn_implementation="eager"`` (transformers 4.57
  defaults to sdpa, where the reference's prefix tuning masks differ);
  When the reference leaves tensors the outputs depend on out of the file (the shared parameters
  of bare base models, e.g. Compacter's ``phm_rule``), they are stored there too, under
  ``unsaved.<key>``, so that a test can tell "not in the file" apart from "computed differently";
* ``manifest.json``: versions, the batch, and per model and case the config string, the directory,
  the weights file and its format, or the reason the reference itself cannot run the case.

Every adapter parameter is perturbed with seeded noise after ``add_adapter`` (so zero-initialised
parts such as LoRA's ``B`` matter). The output is deterministic: re-running it on the same
library versions gives identical tensors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import adapters
import torch
import transformers
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests" / "fixtures" / "reference" / "checkpoints"
SEED = 1234
NOISE = 0.1
NAME = "a"

VERSIONS = {
    "adapters": adapters.__version__,
    "transformers": transformers.__version__,
    "torch": torch.__version__.split("+")[0],
}

COMMON = dict(vocab_size=99)
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bert": (
        "BertConfig",
        "BertModel",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    ),
    "roberta": (
        "RobertaConfig",
        "RobertaModel",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    ),
    "gpt2": ("GPT2Config", "GPT2Model", dict(n_embd=32, n_layer=2, n_head=4)),
    "bart": (
        "BartConfig",
        "BartModel",
        dict(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=37,
            decoder_ffn_dim=37,
            max_position_embeddings=64,
        ),
    ),
    "llama": (
        "LlamaConfig",
        "LlamaModel",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        ),
    ),
    # Supported by the reference through its plugin interface (bottleneck, LoRA, ReFT and
    # invertible adapters only), which wires up_proj as "intermediate" and down_proj as "output".
    "qwen2": (
        "Qwen2Config",
        "Qwen2Model",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        ),
    ),
}

SEED_CASES = [
    "seq_bn",
    "double_seq_bn",
    "par_bn",
    "scaled_par_bn",
    "seq_bn_inv",
    "double_seq_bn_inv",
    "compacter",
    "compacter++",
    "compacter[reduction_factor=8]",
    "compacter++[reduction_factor=8]",
    "prefix_tuning",
    "prefix_tuning_flat",
    "lora",
    "ia3",
    "mam",
    "unipelt",
    "prompt_tuning",
]
VARIANT_CASES = [
    "lora[r=4, alpha=16, attn_matrices=['q','k','v'], intermediate_lora=True]",
    "seq_bn[reduction_factor={'default': 16, '1': 8}, ln_after=True]",
    "ia3[output_lora=True]",
    "dora",
    "loreft",
    "noreft[prefix_positions=2, suffix_positions=1]",
    "double_seq_bn[cross_adapter=True]",
]
#: Cases whose reference state dict holds one tensor under two names (``ln_before``: the
#: LayerNorm is both ``adapter_norm_before`` and ``adapter_down.0``). Appended last, so that
#: the other cases keep their seeds; ``--add`` records only cases missing from the manifest.
ALIAS_CASES = [
    "seq_bn[ln_before=True, ln_after=True, residual_before_ln='post_add', scaling='channel']",
    "par_bn[ln_before=True]",
    "double_seq_bn[ln_before=True]",
]
ALL_CASES = SEED_CASES + VARIANT_CASES + ALIAS_CASES
#: Cases saved with ``use_safetensors=True`` (the rest use the default pytorch_adapter.bin).
#: The reference cannot write prefix tuning with safetensors (its pool is shared by every layer,
#: so the state dict holds tensors that share memory); such cases fall back to the .bin file and
#: the error is recorded under ``safetensors_error``.
SAFETENSORS = {
    "par_bn",
    "lora",
    "prefix_tuning_flat",
    "ia3[output_lora=True]",
    "loreft",
    "compacter[reduction_factor=8]",
}
#: Cases recorded only on some models.
ONLY_ON = {
    "double_seq_bn[cross_adapter=True]": {"bart"},
    **{case: {"bert", "llama"} for case in ALIAS_CASES},
}

#: The fixed batch: 2 × 7 tokens, the second row right-padded (attention mask 0).
INPUT_IDS = [[5, 17, 42, 8, 91, 33, 60], [7, 25, 64, 12, 50, 0, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
DECODER_INPUT_IDS = [[2, 14, 77, 9, 30, 45], [2, 61, 3, 88, 19, 26]]

_MARKERS = (
    "adapters.",
    "prefix_tunings.",
    "prefix_gates.",
    "loras.",
    "refts.",
    "prompt_tunings.",
    "shared_parameters.",
    "invertible_adapters.",
)


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()


def case_dir(case: str) -> str:
    """A short, filesystem-friendly directory name for a config string."""
    ident, _, args = case.partition("[")
    ident = ident.replace("++", "pp")
    args = re.sub(r"[^A-Za-z0-9]+", "_", args).strip("_")
    return f"{ident}__{args}" if args else ident


def build_base(model: str) -> torch.nn.Module:
    config_cls, model_cls, kwargs = MODELS[model]
    config = getattr(transformers, config_cls)(**COMMON, **kwargs)
    torch.manual_seed(SEED)
    net = getattr(transformers, model_cls)(config)
    # Non-trivial LayerNorm affine parameters, so that LN placement matters.
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, param in sorted(net.named_parameters()):
            if "norm" in name.lower():
                param.add_(torch.randn(param.shape, generator=gen) * 0.2)
    return net.eval()


def inputs(model: str) -> dict[str, torch.Tensor]:
    batch = {
        "input_ids": torch.tensor(INPUT_IDS),
        "attention_mask": torch.tensor(ATTENTION_MASK),
    }
    if model == "bart":
        batch["decoder_input_ids"] = torch.tensor(DECODER_INPUT_IDS)
    return batch


def outputs(net: torch.nn.Module, model: str) -> torch.Tensor:
    with torch.no_grad():
        return net(**inputs(model)).last_hidden_state.detach().contiguous()


def unpadded_row(net: torch.nn.Module, model: str) -> torch.Tensor:
    """The padded second row run alone, without its padding and without a mask."""
    batch = inputs(model)
    length = int(batch["attention_mask"][1].sum())
    row = {"input_ids": batch["input_ids"][1:, :length]}
    if model == "bart":
        row["decoder_input_ids"] = batch["decoder_input_ids"][1:]
    with torch.no_grad():
        return net(**row).last_hidden_state[0].detach().contiguous()


def eager_outputs(net: torch.nn.Module, model: str, base_dir: Path, case: str) -> torch.Tensor:
    """The same adapter with eager attention (transformers 4.57 defaults to sdpa)."""
    _, model_cls, _ = MODELS[model]
    eager = getattr(transformers, model_cls).from_pretrained(
        str(base_dir), attn_implementation="eager"
    )
    adapters.init(eager)
    eager.add_adapter(NAME, config=case)
    eager.load_state_dict(net.state_dict(), strict=True)
    eager.set_active_adapters(NAME)
    return outputs(eager.eval(), model)


def _is_adapter_param(key: str) -> bool:
    return any(f".{m}{NAME}." in f".{key}" for m in _MARKERS)


def perturb(net: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in sorted(net.named_parameters()):
            if _is_adapter_param(key):
                param.add_(torch.randn(param.shape, generator=gen) * NOISE)


def record_case(model: str, base_dir: Path, case: str, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"config": case, "dir": case_dir(case)}
    net = build_base(model)
    net.load_state_dict(
        transformers.AutoModel.from_pretrained(str(base_dir)).state_dict(), strict=True
    )
    adapters.init(net)
    stage = "add"
    try:
        net.add_adapter(NAME, config=case)
        stage = "perturb"
        perturb(net, SEED + 100 * index)
        net.set_active_adapters(NAME)
        net.eval()
        stage = "forward"
        hidden = outputs(net, model)
        stage = "save"
        target = base_dir.parent / entry["dir"]
        use_st = case in SAFETENSORS
        if use_st:
            try:
                net.save_adapter(str(target), NAME, use_safetensors=True)
            except RuntimeError as exc:
                shutil.rmtree(target, ignore_errors=True)
                # The message lists the tensor names as a set (unordered): keep the text before it.
                text = " ".join(str(exc).split()).split(": [")[0]
                entry["safetensors_error"] = f"{type(exc).__name__}: {text}"
                use_st = False
        if not use_st:
            net.save_adapter(str(target), NAME)
        weights = "adapter.safetensors" if use_st else "pytorch_adapter.bin"
        entry["weights"] = weights
        saved = set(_saved_keys(target / weights))
        tensors = {"last_hidden_state": hidden, "unpadded_row_1": unpadded_row(net, model)}
        try:
            tensors["eager_last_hidden_state"] = eager_outputs(net, model, base_dir, case)
        except Exception as exc:
            entry["eager_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        for key, param in net.named_parameters(remove_duplicate=False):
            if _is_adapter_param(key) and key not in saved:
                # Not written by the reference (bare base model: no leading dot on the key).
                tensors[f"unsaved.{key}"] = param.detach().clone().contiguous()
        unsaved = sorted(k[len("unsaved.") :] for k in tensors if k.startswith("unsaved."))
        if unsaved:
            entry["unsaved"] = unsaved
        save_file(tensors, str(target / "outputs.safetensors"))
        entry["saved_numbers"] = int(sum(t.numel() for t in _load(target / weights).values()))
    except Exception as exc:  # the reference itself cannot run this case
        msg = str(exc).splitlines()[0] if str(exc) else ""
        entry["error"] = {"stage": stage, "type": type(exc).__name__, "message": msg[:300]}
    return entry


def _load(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), map_location="cpu", weights_only=True)


def _saved_keys(path: Path) -> list[str]:
    return list(_load(path))


def add_missing() -> int:
    """``--add``: record the cases that the committed manifest lacks; leave the rest as it is."""
    path = OUT_DIR / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for model, info in manifest["models"].items():
        base_dir = OUT_DIR / model / "base"
        known = {case["config"] for case in info["cases"]}
        for index, case in enumerate(ALL_CASES):
            if case in known or (case in ONLY_ON and model not in ONLY_ON[case]):
                continue
            info["cases"].append(record_case(model, base_dir, case, index))
            status = info["cases"][-1].get("error", {}).get("type", "ok")
            print(f"{model:8} {case:70} {status}", file=sys.stderr)
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    _quiet()
    torch.set_num_threads(1)
    if "--add" in sys.argv[1:]:
        return add_missing()
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    manifest: dict[str, Any] = {
        "description": (
            "Adapters saved by the reference library on tiny base models, with their outputs. "
            "See scripts/reference/make_checkpoints.py."
        ),
        "generator": "scripts/reference/make_checkpoints.py",
        "versions": VERSIONS,
        "adapter_name": NAME,
        "noise_std": NOISE,
        "inputs": {
            "input_ids": INPUT_IDS,
            "attention_mask": ATTENTION_MASK,
            "decoder_input_ids (bart)": DECODER_INPUT_IDS,
        },
        "models": {},
    }
    for model, (config_cls, model_cls, kwargs) in MODELS.items():
        base_dir = OUT_DIR / model / "base"
        net = build_base(model)
        net.save_pretrained(str(base_dir), safe_serialization=True)
        save_file(
            {"last_hidden_state": outputs(net, model), "unpadded_row_1": unpadded_row(net, model)},
            str(base_dir / "outputs.safetensors"),
        )
        cases = []
        for index, case in enumerate(ALL_CASES):
            if case in ONLY_ON and model not in ONLY_ON[case]:
                continue
            cases.append(record_case(model, base_dir, case, index))
            status = cases[-1].get("error", {}).get("type", "ok")
            print(f"{model:8} {case:70} {status}", file=sys.stderr)
        manifest["models"][model] = {
            "config_class": config_cls,
            "model_class": model_cls,
            "kwargs": {**COMMON, **kwargs},
            "cases": cases,
        }
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
