"""Record the reference library's composition blocks, AdapterFusion and ``average_adapter``.

Run from the repository root, inside the reference virtual environment (see README.md here),
after ``make_checkpoints.py`` (it reuses that script's tiny base models)::

    .venv-ref/bin/python scripts/reference/make_composition.py

It writes ``tests/fixtures/reference/composition/<model>/`` for tiny BERT, BART and LLaMA:

* ``adapters/<name>/``: each adapter of ``ADAPTERS`` as ``save_adapter`` wrote it, every
  parameter perturbed with seeded noise (so zero-initialised parts such as LoRA's ``B`` matter);
* ``fusions/<fusion name>/``: ``save_adapter_fusion`` of each fusion of ``FUSIONS``, its
  parameters perturbed too (non-trivial fusion weights);
* ``averaged/<name>/``: the adapter ``average_adapter`` built, saved with ``save_adapter``;
* ``setup/``: ``save_adapter_setup`` of ``SAVED_SETUP`` (safetensors), whose output is that
  setup's case;
* ``outputs.safetensors``: ``last_hidden_state`` (BART: the decoder's) on the fixed batch of
  ``make_checkpoints.py``, eager attention, eval mode, one key per case;
* ``manifest.json`` (one for all models): per case the setup in adapter_dsl's notation, the block
  the reference ran (they differ only for ``Average``, see ``reference_setup``), the output key,
  or the stage and error where the reference itself fails.

``Average``: the reference computes ``mean_i(w_i·h_i)`` (dividing by k a second time), adapter_dsl
``Σ w_i·h_i``. The reference's result for adapter_dsl's ``Average(..., weights=w)`` is therefore
recorded by running the reference with ``weights=k·w, normalize_weights=False``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import adapters
import torch
import transformers
from adapters.composition import (
    Average,
    BatchSplit,
    Fuse,
    MultiTask,
    Parallel,
    Split,
    Stack,
)
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
BASES = ROOT / "tests" / "fixtures" / "reference" / "checkpoints"
OUT_DIR = ROOT / "tests" / "fixtures" / "reference" / "composition"
SEED = 4321
NOISE = 0.1
MODELS = {"bert": "BertModel", "bart": "BartModel", "llama": "LlamaModel"}

#: name → config string. Pairs with equal configs (b1/b2, l1/l2) can be averaged.
ADAPTERS = {
    "b1": "seq_bn[reduction_factor=8]",
    "b2": "seq_bn[reduction_factor=8]",
    "b3": "par_bn[reduction_factor=8]",
    "b4": "double_seq_bn[reduction_factor=8]",
    "l1": "lora[r=4]",
    "l2": "lora[r=4]",
    "i1": "ia3",
    "x1": "prefix_tuning[prefix_length=4, bottleneck_size=16]",
    "x2": "prefix_tuning_flat[prefix_length=3]",
}
#: fusion adapters → fusion config.
FUSIONS = {("b1", "b2"): "dynamic", ("b2", "b3"): "static"}

SETUPS = [
    # single adapters (also the expected rows of batch splits over different methods)
    *ADAPTERS,
    # bottleneck
    "Stack(b1, b2)",
    "Stack(b1, b3)",
    "Stack(b4, b1)",
    "Fuse(b1, b2)",
    "Fuse(b2, b3)",
    "Stack(b3, Fuse(b1, b2))",
    "Split(b1, b2, splits=[3, 4])",
    "BatchSplit(b1, b2, batch_sizes=[1, 1])",
    "Parallel(b1, b2)",
    "Average(b1, b2, weights=[0.3, 0.7])",
    "Average(b1, b3)",
    # LoRA family
    "Stack(l1, l2)",
    "Stack(l1, i1)",
    "BatchSplit(l1, l2, batch_sizes=[1, 1])",
    "Parallel(l1, l2)",
    "Average(l1, l2, weights=[0.25, 0.75])",
    # prefix tuning
    "Stack(x1, x2)",
    "BatchSplit(x1, x2, batch_sizes=[1, 1])",
    "Parallel(x1, x2)",
    # across methods (the reference fails; adapter_dsl gives each row its own adapter)
    "BatchSplit(b1, l1, batch_sizes=[1, 1])",
]

#: The setup written whole with save_adapter_setup.
SAVED_SETUP = "Stack(b3, Fuse(b1, b2))"

#: name → (inputs, weights, combine_strategy, normalize_weights, svd_rank)
AVERAGES: dict[str, tuple[list[str], list[float], str, bool, int | None]] = {
    "avg_bn": (["b1", "b2"], [0.3, 0.7], "linear", True, None),
    "avg_lora": (["l1", "l2"], [0.3, 0.7], "linear", True, None),
    "avg_negate_b": (["l1", "l2"], [0.6, -0.4], "lora_linear_only_negate_b", False, None),
    "avg_svd": (["l1", "l2"], [0.5, 0.5], "lora_delta_w_svd", True, 2),
}

#: The fixed batch of make_checkpoints.py: 2 × 7 tokens, the second row right-padded.
INPUT_IDS = [[5, 17, 42, 8, 91, 33, 60], [7, 25, 64, 12, 50, 0, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
DECODER_INPUT_IDS = [[2, 14, 77, 9, 30, 45], [2, 61, 3, 88, 19, 26]]

NAMESPACE: dict[str, Any] = {
    "Stack": Stack,
    "Fuse": Fuse,
    "Split": Split,
    "BatchSplit": BatchSplit,
    "Parallel": Parallel,
    "Average": Average,
    "MultiTask": MultiTask,
}


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()


def inputs(model: str) -> dict[str, torch.Tensor]:
    batch = {
        "input_ids": torch.tensor(INPUT_IDS),
        "attention_mask": torch.tensor(ATTENTION_MASK),
    }
    if model == "bart":
        batch["decoder_input_ids"] = torch.tensor(DECODER_INPUT_IDS)
    return batch


def block(setup: str) -> Any:
    """The reference block of a setup string in adapter_dsl's notation (bare names)."""
    names = {name: name for name in ADAPTERS}
    return eval(setup, {"__builtins__": {}}, {**NAMESPACE, **names})


def reference_block(setup: str) -> tuple[Any, str]:
    """The block run in the reference, and its repr: ``Average`` weights are scaled by k."""
    value = block(setup)
    if isinstance(value, Average):
        k = len(value.children)
        weights = [w * k for w in value.weights]
        text = f"Average({', '.join(value.children)}, weights={weights!r}, normalize_weights=False)"
        return Average(*value.children, weights=weights, normalize_weights=False), text
    return value, setup


def perturb(net: torch.nn.Module, markers: list[str], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in sorted(net.named_parameters()):
            if any(m in f".{key}" for m in markers):
                param.add_(torch.randn(param.shape, generator=gen) * NOISE)


def adapter_markers(name: str) -> list[str]:
    kinds = ("adapters", "prefix_tunings", "prefix_gates", "loras", "shared_parameters")
    return [f".{kind}.{name}." for kind in kinds]


def record_model(model: str) -> dict[str, Any]:
    base_dir = BASES / model / "base"
    out = OUT_DIR / model
    # A relative path: the saved configs record it as "model_name".
    net = getattr(transformers, MODELS[model]).from_pretrained(
        os.path.relpath(base_dir, ROOT), attn_implementation="eager"
    )
    adapters.init(net)
    torch.manual_seed(SEED)  # the adapters' own initialisation, before the perturbation
    for sub in ("adapters", "fusions", "averaged"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for index, (name, config) in enumerate(ADAPTERS.items()):
        net.add_adapter(name, config=config)
        perturb(net, adapter_markers(name), SEED + index)
        net.save_adapter(str(out / "adapters" / name), name)
    fusions = []
    for index, (names, config) in enumerate(FUSIONS.items()):
        fuse = Fuse(*names)
        net.add_adapter_fusion(fuse, config)
        perturb(net, [f".adapter_fusion_layer.{fuse.name}."], SEED + 100 + index)
        net.save_adapter_fusion(str(out / "fusions" / fuse.name), fuse)
        fusions.append({"adapters": list(names), "config": config, "dir": f"fusions/{fuse.name}"})
    net.eval()
    tensors: dict[str, torch.Tensor] = {}
    cases = []
    for index, setup in enumerate(SETUPS):
        ref, ref_text = reference_block(setup)
        entry: dict[str, Any] = {"setup": setup, "key": f"case{index}"}
        if ref_text != setup:
            entry["reference_setup"] = ref_text
        try:
            net.set_active_adapters(ref)
            with torch.no_grad():
                hidden = net(**inputs(model)).last_hidden_state
            tensors[entry["key"]] = hidden.detach().contiguous()
            if isinstance(ref, Fuse) and FUSIONS[tuple(ref.children)] == "dynamic":
                reg = net.get_fusion_regularization_loss()
                entry["regularization_loss"] = float(reg)
        except Exception as exc:  # the reference itself cannot run this setup
            msg = str(exc).splitlines()[0] if str(exc) else ""
            entry["error"] = {"type": type(exc).__name__, "message": msg[:300]}
            del entry["key"]
        cases.append(entry)
        status = entry.get("error", {}).get("type", "ok")
        print(f"{model:6} {setup:45} {status}", file=sys.stderr)
    net.save_adapter_setup(str(out / "setup"), block(SAVED_SETUP), use_safetensors=True)
    averaged = []
    for name, (names, weights, strategy, normalize, svd_rank) in AVERAGES.items():
        entry = {
            "name": name,
            "adapters": names,
            "weights": weights,
            "combine_strategy": strategy,
            "normalize_weights": normalize,
            "svd_rank": svd_rank,
            "key": f"average_{name}",
            "dir": f"averaged/{name}",
        }
        net.average_adapter(
            name,
            names,
            weights=weights,
            combine_strategy=strategy,
            normalize_weights=normalize,
            svd_rank=svd_rank,
        )
        net.set_active_adapters(name)
        with torch.no_grad():
            tensors[entry["key"]] = net(**inputs(model)).last_hidden_state.detach().contiguous()
        net.save_adapter(str(out / entry["dir"]), name)
        averaged.append(entry)
    save_file(tensors, str(out / "outputs.safetensors"))
    saved = {"setup": SAVED_SETUP, "dir": "setup"}
    return {"cases": cases, "fusions": fusions, "averaged": averaged, "saved_setup": saved}


def main() -> int:
    _quiet()
    os.chdir(ROOT)
    torch.set_num_threads(1)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    manifest: dict[str, Any] = {
        "description": (
            "Composition blocks, AdapterFusion and average_adapter run by the reference library "
            "on tiny base models. See scripts/reference/make_composition.py."
        ),
        "generator": "scripts/reference/make_composition.py",
        "versions": {
            "adapters": adapters.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__.split("+")[0],
        },
        "bases": "tests/fixtures/reference/checkpoints/<model>/base",
        "attn_implementation": "eager",
        "adapters": ADAPTERS,
        "inputs": {
            "input_ids": INPUT_IDS,
            "attention_mask": ATTENTION_MASK,
            "decoder_input_ids (bart)": DECODER_INPUT_IDS,
        },
        "models": {},
    }
    for model in MODELS:
        manifest["models"][model] = record_model(model)
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
