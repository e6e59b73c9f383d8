"""Generate reference fixtures from the real AdapterHub ``adapters`` library.

Run from the repository root, inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/make_fixtures.py

It writes two committed data files into ``tests/fixtures/reference/``:

* ``config_corpus.json`` -- config strings and dicts passed to ``AdapterConfig.load`` together with
  what the reference library returned (``to_dict()`` and class name) or raised (exception type and
  message). Inputs the library accepts although they are nonsensical are recorded with ``ok: true``;
  the tests decide what to expect from our parser.
* ``param_counts.json`` -- for tiny models built from config objects (no downloads), the number of
  trainable parameters after ``train_adapter``, the number of values in the saved
  ``pytorch_adapter.bin`` and (for some models) the saved keys with their shapes.

The output is deterministic: seeds are fixed, dicts keep insertion order, and nothing time- or
machine-dependent is written. Re-running it on the same library versions gives identical files.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adapters
import torch
import transformers
from adapters import ADAPTER_CONFIG_MAP, AdapterConfig

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests" / "fixtures" / "reference"
SEED = 1234

VERSIONS = {
    "adapters": adapters.__version__,
    "transformers": transformers.__version__,
    "torch": torch.__version__.split("+")[0],
}


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _err(exc: BaseException) -> dict[str, str]:
    # Object reprs in messages carry memory addresses; drop them so the output is reproducible.
    return {"type": type(exc).__name__, "message": _ADDRESS.sub("", str(exc))}


def _fmt(name: str, overrides: dict[str, Any]) -> str:
    """Render ``name[k=v, ...]`` with Python-literal values (what the reference parser expects)."""
    if not overrides:
        return name
    body = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"{name}[{body}]"


# ---------------------------------------------------------------------------------------------
# Part 1: config corpus
# ---------------------------------------------------------------------------------------------

BN_BOOL_FIELDS = [
    "mh_adapter",
    "output_adapter",
    "original_ln_before",
    "original_ln_after",
    "ln_before",
    "ln_after",
    "is_parallel",
    "use_gating",
    "adapter_residual_before_ln",
    "cross_adapter",
    "phm_layer",
    "factorized_phm_W",
    "shared_W_phm",
    "shared_phm_rule",
    "factorized_phm_rule",
    "learn_phm",
    "phm_bias",
]
LORA_BOOL_FIELDS = ["selfattn_lora", "intermediate_lora", "output_lora", "use_gating", "use_dora"]
PREFIX_BOOL_FIELDS = ["encoder_prefix", "cross_prefix", "flat", "use_gating", "shared_gating"]
REFT_BOOL_FIELDS = ["orthogonality", "tied_weights", "output_reft"]

NON_LINEARITIES = ["relu", "gelu", "gelu_new", "swish", "tanh", "silu", "leakyrelu"]
LEAVE_OUTS: list[list[int]] = [[0], [0, 1], [11]]


def bn_sweep(ident: str) -> list[dict[str, Any]]:
    """Single-field (or minimally coupled) overrides that are valid for a bottleneck preset."""
    preset = ADAPTER_CONFIG_MAP[ident]
    phm = bool(preset.phm_layer)
    out: list[dict[str, Any]] = []
    for rf in [2, 8, 16.0, 0.5, {"default": 16, "1": 8}]:
        out.append({"reduction_factor": rf})
    for lo in LEAVE_OUTS:
        out.append({"leave_out": lo})
    for nl in NON_LINEARITIES:
        out.append({"non_linearity": nl})
    for field in BN_BOOL_FIELDS:
        if field == "factorized_phm_W" and preset.shared_W_phm:
            continue
        out.append({field: not getattr(preset, field)})
    out.append({"residual_before_ln": False})
    if preset.original_ln_before:
        out.append({"residual_before_ln": "post_add"})
    else:
        out.append({"residual_before_ln": "post_add", "original_ln_before": True})
    for iw in ["bert"] if phm else ["bert", "mam_adapter", "houlsby"]:
        out.append({"init_weights": iw})
    out.append({"init_weights_seed": 42})
    for sc in [2.0, "learned", "channel"]:
        out.append({"scaling": sc})
    for dr in [0.0, 0.1, 0.5]:
        out.append({"dropout": dr})
    if preset.inv_adapter is None:
        out.append({"inv_adapter": "nice", "inv_adapter_reduction_factor": 2})
    else:
        out.append({"inv_adapter_reduction_factor": 4})
        out.append({"inv_adapter": "nice", "inv_adapter_reduction_factor": 8.0})
    out.append({"phm_dim": 2})
    out.append({"phm_c_init": "uniform"})
    out.append({"phm_init_range": 0.01})
    out.append({"hypercomplex_nonlinearity": "glorot-normal"})
    out.append({"phm_rank": 2})
    return out


def lora_sweep(ident: str) -> list[dict[str, Any]]:
    preset = ADAPTER_CONFIG_MAP[ident]
    is_ia3 = preset.composition_mode == "scale"
    is_dora = bool(preset.use_dora)
    is_vera = isinstance(preset.vera_d, float)
    is_mtl = ident == "mtl_lora"
    out: list[dict[str, Any]] = []
    for r in [1] if is_ia3 else [1, 4, 16, 64]:
        out.append({"r": r})
    for a in [1, 16, 32]:
        out.append({"alpha": a})
    for dr in [0.0] if is_ia3 else [0.0, 0.1, 0.5]:
        out.append({"dropout": dr})
    for am in [["q"], ["k", "v"], ["q", "k", "v"]]:
        out.append({"attn_matrices": am})
    for lo in LEAVE_OUTS:
        out.append({"leave_out": lo})
    for field in LORA_BOOL_FIELDS:
        if field == "use_dora" and (is_ia3 or is_mtl):
            continue
        out.append({field: not getattr(preset, field)})
    if is_ia3:
        out.append({"composition_mode": "add"})
        inits = ["ia3", "bert", "lora"]
    else:
        if not is_dora:
            out.append({"composition_mode": "scale", "r": 1})
        out.append({"composition_mode": "add"})
        inits = ["lora", "bert", "ia3", "vera"]
    for iw in inits:
        out.append({"init_weights": iw})
    out.append({"init_weights_seed": 42})
    if not (is_ia3 or is_mtl):
        if is_vera:
            out.append({"vera_d": 0.5})
            out.append({"vera_b": 0.1})
        else:
            out.append({"vera_d": 0.1, "vera_b": 0.0})
    out.append({"dtype": "float32"})
    if is_mtl:
        out.append({"n_up_projection": 2})
        out.append({"weights_sharpness": 0.1})
        out.append({"task_specific_matrix_type": "singular_values"})
    return out


def prefix_sweep(ident: str) -> list[dict[str, Any]]:
    preset = ADAPTER_CONFIG_MAP[ident]
    out: list[dict[str, Any]] = []
    for field in PREFIX_BOOL_FIELDS:
        out.append({field: not getattr(preset, field)})
    for lo in LEAVE_OUTS:
        out.append({"leave_out": lo})
    for pl in [1, 5, 10, 64]:
        out.append({"prefix_length": pl})
    for bs in [64, 800]:
        out.append({"bottleneck_size": bs})
    for nl in ["relu", "gelu", "tanh"]:
        out.append({"non_linearity": nl})
    out.append({"dropout": 0.1})
    out.append({"init_weights_seed": 42})
    return out


def prompt_sweep(ident: str) -> list[dict[str, Any]]:
    return [
        {"prompt_length": 1},
        {"prompt_length": 5},
        {"prompt_length": 20},
        {"prompt_init": "random_uniform"},
        {"prompt_init": "from_string", "prompt_init_text": "hello world"},
        {"combine": "prefix_after_bos"},
        {"combine": "prefix"},
        {"init_weights_seed": 42},
    ]


def reft_sweep(ident: str) -> list[dict[str, Any]]:
    preset = ADAPTER_CONFIG_MAP[ident]
    out: list[dict[str, Any]] = [{"layers": "all"}, {"layers": [0, 1]}, {"layers": [1]}]
    for pp in [1, 5]:
        out.append({"prefix_positions": pp})
    for sp in [0, 2]:
        out.append({"suffix_positions": sp})
    for r in [1, 2, 4]:
        out.append({"r": r})
    for field in REFT_BOOL_FIELDS:
        out.append({field: not getattr(preset, field)})
    for dr in [0.0, 0.1]:
        out.append({"dropout": dr})
    for nl in ["relu", "tanh"]:
        out.append({"non_linearity": nl})
    out.append({"dtype": "float32"})
    out.append({"init_weights_seed": 42})
    return out


def union_preset_sweep(ident: str) -> list[dict[str, Any]]:
    # ``replace`` on a union applies the override to every child.
    return [{"leave_out": [0]}, {"init_weights_seed": 42}, {"use_gating": True}]


FAMILY_SWEEPS: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "SeqBnConfig": bn_sweep,
    "DoubleSeqBnConfig": bn_sweep,
    "ParBnConfig": bn_sweep,
    "SeqBnInvConfig": bn_sweep,
    "DoubleSeqBnInvConfig": bn_sweep,
    "CompacterConfig": bn_sweep,
    "CompacterPlusPlusConfig": bn_sweep,
    "PrefixTuningConfig": prefix_sweep,
    "PromptTuningConfig": prompt_sweep,
    "LoRAConfig": lora_sweep,
    "IA3Config": lora_sweep,
    "VeraConfig": lora_sweep,
    "DoRAConfig": lora_sweep,
    "DvoRAConfig": lora_sweep,
    "MTLLoRAConfig": lora_sweep,
    "LoReftConfig": reft_sweep,
    "NoReftConfig": reft_sweep,
    "DiReftConfig": reft_sweep,
    "MAMConfig": union_preset_sweep,
    "UniPELTConfig": union_preset_sweep,
}

# Identifiers swept exhaustively; every other identifier gets a fixed-size sample of its sweep.
FULL_SWEEP = {"seq_bn", "lora", "prefix_tuning", "prompt_tuning", "loreft", "mam", "unipelt"}
SAMPLE_SIZE = {
    "pfeiffer": 2, "houlsby": 2, "parallel": 2, "scaled_parallel": 2, "pfeiffer+inv": 2,
    "houlsby+inv": 2, "double_seq_bn": 14, "par_bn": 14, "compacter": 12, "scaled_par_bn": 6,
    "seq_bn_inv": 8, "double_seq_bn_inv": 6, "compacter++": 8, "prefix_tuning_flat": 5,
    "mtl_lora": 8, "ia3": 10, "vera": 8, "dora": 8, "dvora": 5, "noreft": 5, "direft": 5,
}  # fmt: skip

MULTI_KEY = [
    "seq_bn[reduction_factor=2, leave_out=[11]]",
    "par_bn[reduction_factor={'0': 8, '1': 8, 'default': 16}]",
    "prefix_tuning[prefix_length=30, flat=True]",
    "lora[r=200,alpha=8]",
    "lora[r=4, alpha=16]",
    "lora[alpha=16, r=4]",
    "lora[r=4, alpha=16, dropout=0.1, attn_matrices=['q', 'k', 'v'], intermediate_lora=True]",
    "lora[r=4,r=8]",
    "seq_bn[residual_before_ln='post_add', original_ln_before=True]",
    "double_seq_bn[reduction_factor=8, non_linearity='gelu', ln_after=True]",
    "compacter[reduction_factor=8, phm_dim=2]",
    "compacter++[reduction_factor=8, phm_rank=2, factorized_phm_rule=True]",
    "ia3[intermediate_lora=False, output_lora=True]",
    "prompt_tuning[prompt_length=20, combine='prefix_after_bos']",
    "loreft[layers=[0, 1], r=2, prefix_positions=5, suffix_positions=5]",
    "par_bn[scaling='channel', use_gating=True, dropout=0.1]",
    "seq_bn[inv_adapter='nice', inv_adapter_reduction_factor=2, reduction_factor=8]",
    "vera[r=4, vera_d=0.2, vera_b=0.05]",
    "prefix_tuning[flat=True, prefix_length=5]",
    "seq_bn[reduction_factor={'1': 8, 'default': 16}, leave_out=[0]]",
    "dora[r=4, alpha=8, attn_matrices=['q', 'k', 'v'], output_lora=True]",
    "mtl_lora[n_up_projection=3, r=4, weights_sharpness=0.5]",
]

FORMATTING = [
    "lora[]",
    "seq_bn[]",
    "lora[r=4,]",
    "lora[ r=4 ]",
    "lora[r=4 ,alpha=16]",
    "lora[r=4,alpha=16,]",
    "  lora[r=4]  ",
    " seq_bn ",
    'seq_bn[non_linearity="gelu"]',
    'lora[attn_matrices=["q", "v"]]',
    "seq_bn[reduction_factor={'default':16,'1':8}]",
    "lora[r=4]|seq_bn[]",
    "seq_bn | lora",
    "seq_bn|lora",
    "lora[r = 4]",
    "lora[r=4,\nalpha=8]",
    "prefix_tuning[prefix_length=10,flat=True]",
    "compacter++[reduction_factor=8]",
    "pfeiffer+inv[reduction_factor=8]",
    "lora[leave_out=[ 0 , 1 ]]",
]

UNIONS = [
    "prefix_tuning|par_bn",
    "prefix_tuning[bottleneck_size=800]|parallel",
    "lora|seq_bn",
    "seq_bn|lora",
    "seq_bn[leave_out=[0]]|seq_bn[leave_out=[1]]",
    "double_seq_bn[mh_adapter=False]|double_seq_bn[output_adapter=False, reduction_factor=2]",
    "seq_bn[leave_out=[9, 10, 11], reduction_factor=2]|seq_bn[leave_out=[0, 1, 2, 3, 4, 5, 6, 7, 8]]",
    "prefix_tuning[prefix_length=10, use_gating=True]|seq_bn[use_gating=True]|lora[use_gating=True]",
    "prefix_tuning|lora|seq_bn",
    "prefix_tuning|seq_bn",
    "compacter[reduction_factor=8]|lora[init_weights='bert']",
    "seq_bn[phm_dim=1]|lora",
    "loreft|lora",
    "prompt_tuning|lora",
    "prefix_tuning|prompt_tuning",
    "lora|par_bn",
    "seq_bn|double_seq_bn[output_adapter=False]",
    "seq_bn|lora|prefix_tuning|prompt_tuning|loreft",
    "lora|mtl_lora",
    "ia3|seq_bn[reduction_factor=8]",
    "lora[leave_out=[0]]|ia3[leave_out=[1]]",
    "vera|par_bn",
    "seq_bn_inv|lora",
    "prefix_tuning_flat|lora[r=4]",
    "lora[r=4]|seq_bn[]",
]

INVALID_STRINGS = [
    # rejected at parse/validation time
    "LoRA",
    "Seq_Bn",
    "lora [r=4]",
    "foo",
    "foo[r=4]",
    "lora[foo=1]",
    "seq_bn[r=4]",
    "prompt_tuning[random_uniform_scale=0.1]",
    "loreft[subtract_projection=False]",
    "mam[r=4]",
    "seq_bn[non_linearity=gelu]",
    "lora[use_gating=true]",
    "lora[r=2**3]",
    "seq_bn[leave_out=list(range(3))]",
    "double_seq_bn[reduction_factor=dict(default=1)]",
    "prompt_tuning[prompt_init_text='a=b']",
    "|",
    "lora|",
    "|lora",
    "lora||seq_bn",
    "lora[r=4",
    "lora[r=4]x",
    "a[b=1][c=2]",
    "[r=4]",
    "lora]",
    "seq_bn,lora",
    "lora[r:4]",
    "lora[4]",
    "lora|ia3",
    "lora|vera",
    "lora|dora",
    "seq_bn|seq_bn",
    "seq_bn|double_seq_bn",
    "seq_bn|par_bn",
    "loreft|noreft",
    "prefix_tuning|prefix_tuning_flat",
    "prompt_tuning|prompt_tuning",
    "double_seq_bn[mh_adapter=False, output_adapter=False, cross_adapter=True]|seq_bn[output_adapter=False, mh_adapter=True]",
    "mam|lora",
    "unipelt|seq_bn",
    "mam|unipelt",
    # accepted by the reference although nonsensical (they fail when added, at the first forward
    # pass, or never); these end up in the "lenient" group
    "",
    "lora[r=-3]",
    "lora[r=0]",
    "lora[r=2.5]",
    "lora[r=True]",
    "lora[alpha=-1]",
    "seq_bn[dropout=1.5]",
    "seq_bn[dropout=-0.1]",
    "par_bn[reduction_factor='abc']",
    "seq_bn[reduction_factor=0]",
    "seq_bn[reduction_factor=-4]",
    "seq_bn[reduction_factor={'1': 8}]",
    "seq_bn[reduction_factor={1: 8, 'default': 16}]",
    "seq_bn[scaling=2]",
    "seq_bn[scaling='foo']",
    "seq_bn[non_linearity='nope']",
    "seq_bn[non_linearity=None]",
    "seq_bn[init_weights='xavier']",
    "seq_bn[residual_before_ln=1]",
    "seq_bn[residual_before_ln='foo']",
    "seq_bn[inv_adapter='glow', inv_adapter_reduction_factor=2]",
    "seq_bn[inv_adapter='nice']",
    "seq_bn[mh_adapter=None]",
    "seq_bn[leave_out=0]",
    "seq_bn[init_weights_seed=0]",
    "seq_bn[phm_c_init='foo']",
    "seq_bn[stochastic_depth=0.1]",
    "compacter[init_weights='houlsby']",
    "lora[attn_matrices='qkv']",
    "lora[attn_matrices=['o']]",
    "lora[attn_matrices=[]]",
    "lora[composition_mode='mul']",
    "lora[composition_mode='scale']",
    "lora[init_weights='xavier']",
    "lora[leave_out=[99, -1]]",
    "lora[vera_d=1]",
    "lora[dtype='float99']",
    "ia3[r=4]",
    "ia3[dropout=0.1]",
    "ia3[init_weights='vera']",
    "dora[composition_mode='scale', r=1]",
    "mtl_lora[task_specific_matrix_type='linear']",
    "prefix_tuning[prefix_length=0]",
    "prefix_tuning[non_linearity='nope']",
    "prompt_tuning[prompt_length=0]",
    "prompt_tuning[prompt_init='from_string']",
    "prompt_tuning[combine='suffix']",
    "loreft[layers='first']",
    "lora|mtl_lora[leave_out=[]]",
    "seq_bn[leave_out=[0]]|seq_bn",
]


def _bn_fields(**over: Any) -> dict[str, Any]:
    d = ADAPTER_CONFIG_MAP["seq_bn"].to_dict()
    d.update(over)
    return d


def invalid_dicts() -> list[dict[str, Any]]:
    seq = ADAPTER_CONFIG_MAP["seq_bn"].to_dict()
    lora = ADAPTER_CONFIG_MAP["lora"].to_dict()
    ia3 = ADAPTER_CONFIG_MAP["ia3"].to_dict()
    return [
        {"architecture": "bottleneck", **seq},
        {"architecture": "LoRA", "r": 4},
        {"architecture": "adapter"},
        {"architecture": "lora", "foo": 1},
        {"architecture": "lora", "r": -3},
        {"mh_adapter": False},
        {"mh_adapter": False, "output_adapter": True, "reduction_factor": 16},
        {"config": seq},
        {"architecture": "reft"},
        {"architecture": "reft", "layers": "all", "r": 1},
        {"architecture": "prefix_tuning", "prefix_length": "abc"},
        {"architecture": "prompt_tuning", "random_uniform_scale": 0.1},
        {"architecture": "union", "configs": [lora, ia3]},
        {"architecture": "union", "configs": [seq, seq]},
        {"architecture": "union", "configs": [{"architecture": "union", "configs": [lora]}, seq]},
        {"architecture": "union"},
        {},
        {"architecture": "lora", "attn_matrices": "qkv"},
        _bn_fields(reduction_factor={"1": 8}),
        _bn_fields(dropout=1.5),
        _bn_fields(extra_field="x"),
    ]


def valid_partial_dicts() -> list[dict[str, Any]]:
    seq = ADAPTER_CONFIG_MAP["seq_bn"].to_dict()
    legacy = {
        k: v for k, v in seq.items() if k not in ("inv_adapter", "inv_adapter_reduction_factor")
    }
    legacy["invertible_adapter"] = {"block_type": "nice", "reduction_factor": 2}
    seq_no_default_fields = {
        "mh_adapter": False,
        "output_adapter": True,
        "reduction_factor": 16,
        "non_linearity": "relu",
    }
    return [
        {"architecture": "lora"},
        {"architecture": "lora", "r": 4, "alpha": 16},
        {"architecture": "mtl_lora"},
        {"architecture": "prefix_tuning"},
        {"architecture": "prefix_tuning", "flat": True, "prefix_length": 5},
        {"architecture": "prompt_tuning"},
        {"architecture": "prompt_tuning", "prompt_length": 20, "combine": "prefix_after_bos"},
        {
            "architecture": "reft",
            "layers": "all",
            "prefix_positions": 3,
            "suffix_positions": 0,
            "r": 1,
            "orthogonality": True,
        },
        seq_no_default_fields,
        {**seq_no_default_fields, "mh_adapter": True, "non_linearity": "swish"},
        {"architecture": None, **seq},
        legacy,
        {"architecture": "union", "configs": []},
        {"architecture": "union", "configs": [{"architecture": "lora", "r": 4}]},
        {
            "architecture": "union",
            "configs": [{"architecture": "prefix_tuning"}, {"architecture": "lora", "r": 4}],
        },
        {"architecture": "union", "configs": [seq_no_default_fields, {"architecture": "lora"}]},
    ]


class Corpus:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._counters: dict[str, int] = {}

    def add(
        self, group: str, inp: str | dict[str, Any], lenient_group: str | None = None
    ) -> dict[str, Any] | None:
        """Evaluate one input. With ``lenient_group``, an accepted input is filed under that group."""
        kind = "string" if isinstance(inp, str) else "dict"
        key = kind + ":" + json.dumps(inp)
        if key in self._seen:
            return None
        self._seen.add(key)
        result: dict[str, Any]
        arg = copy.deepcopy(inp)  # AdapterConfig.load mutates dict arguments in place
        try:
            cfg = AdapterConfig.load(arg)
        except Exception as exc:
            result = {"ok": False, "to_dict": None, "class": None, "error": _err(exc)}
        else:
            if cfg is None:
                result = {"ok": True, "to_dict": None, "class": None, "error": None}
            else:
                # Round-trip through JSON so the stored value is exactly what a consumer reads.
                d = json.loads(json.dumps(cfg.to_dict()))
                result = {"ok": True, "to_dict": d, "class": type(cfg).__name__, "error": None}
        if lenient_group is not None and result["ok"]:
            group = lenient_group
        n = self._counters.get(group, 0)
        self._counters[group] = n + 1
        case = {"id": f"{group}-{n:03d}", "kind": kind, "input": copy.deepcopy(inp), **result}
        self.cases.append(case)
        return case


def build_corpus() -> dict[str, Any]:
    rng = random.Random(SEED)
    corpus = Corpus()

    for ident in ADAPTER_CONFIG_MAP:
        corpus.add("bare", ident)

    for ident, preset in ADAPTER_CONFIG_MAP.items():
        sweep = FAMILY_SWEEPS[type(preset).__name__](ident)
        if ident not in FULL_SWEEP:
            idx = sorted(rng.sample(range(len(sweep)), min(SAMPLE_SIZE[ident], len(sweep))))
            sweep = [sweep[i] for i in idx]
        group = "sweep-" + ident.replace("+", "p")
        for over in sweep:
            corpus.add(group, _fmt(ident, over))

    for s in MULTI_KEY:
        corpus.add("multikey", s)
    for s in FORMATTING:
        corpus.add("format", s)
    for s in UNIONS:
        corpus.add("union", s)
    for s in INVALID_STRINGS:
        corpus.add("invalid", s, lenient_group="lenient")

    # Dict inputs: the serialised form of accepted string cases (every preset, plus a sample of
    # the sweeps, multi-key strings and unions), hand-written partial dicts, and rejected dicts.
    ok_strings = [c for c in corpus.cases if c["ok"] and c["to_dict"] is not None]
    bare = [c for c in ok_strings if c["id"].startswith("bare-")]
    others = [c for c in ok_strings if c["id"].split("-")[0] in {"sweep", "multikey", "union"}]
    picked = bare + [others[i] for i in sorted(rng.sample(range(len(others)), 25))]
    for c in picked:
        corpus.add("dict-roundtrip", c["to_dict"])
    for d in valid_partial_dicts():
        corpus.add("dict-partial", d)
    for d in invalid_dicts():
        corpus.add("dict-invalid", d, lenient_group="dict-lenient")

    cases = corpus.cases
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return {
        "description": (
            "AdapterConfig.load(input) as evaluated by the reference library. Groups (id prefix): "
            "bare presets, sweep-<identifier> overrides, multikey, format, union, invalid (inputs "
            "the reference rejects), lenient (questionable inputs it accepts), dict-roundtrip, "
            "dict-partial, dict-invalid, dict-lenient. ok=false: it raised "
            "(error holds the exception type and str()). ok=true with to_dict=null and class=null: "
            "load() returned None (falsy input). to_dict is stored in insertion order; a union is "
            '{"architecture": "union", "configs": [...]}. ok=true does not mean the config is '
            "sensible: several accepted inputs fail when the adapter is added, or never."
        ),
        "generator": "scripts/reference/make_fixtures.py",
        "versions": VERSIONS,
        "counts": {
            "total": len(cases),
            "ok": sum(c["ok"] for c in cases),
            "error": sum(not c["ok"] for c in cases),
            "string": sum(c["kind"] == "string" for c in cases),
            "dict": sum(c["kind"] == "dict" for c in cases),
        },
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------------
# Part 2: parameter counts on tiny models
# ---------------------------------------------------------------------------------------------

MODELS: dict[str, dict[str, Any]] = {
    "bert": {
        "config_class": "BertConfig",
        "model_class": "BertModel",
        "kwargs": dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=99,
        ),
    },
    "roberta": {
        "config_class": "RobertaConfig",
        "model_class": "RobertaModel",
        "kwargs": dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=99,
        ),
    },
    "gpt2": {
        "config_class": "GPT2Config",
        "model_class": "GPT2Model",
        "kwargs": dict(n_embd=32, n_layer=2, n_head=4, vocab_size=99),
    },
    "bart": {
        "config_class": "BartConfig",
        "model_class": "BartModel",
        "kwargs": dict(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=37,
            decoder_ffn_dim=37,
            vocab_size=99,
        ),
    },
    "llama": {
        "config_class": "LlamaConfig",
        "model_class": "LlamaModel",
        "kwargs": dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            vocab_size=99,
        ),
    },
}

SEED_IDENTIFIERS = [
    "seq_bn",
    "double_seq_bn",
    "par_bn",
    "scaled_par_bn",
    "seq_bn_inv",
    "double_seq_bn_inv",
    "compacter",
    "compacter++",
    "prefix_tuning",
    "prefix_tuning_flat",
    "lora",
    "ia3",
    "mam",
    "unipelt",
    "prompt_tuning",
]
EXTRA_IDENTIFIERS = [
    "compacter[reduction_factor=8]",
    "compacter++[reduction_factor=8]",
    "vera",
    "dora",
    "dvora",
    "mtl_lora",
    "loreft",
    "noreft",
    "direft",
    "lora[intermediate_lora=True,output_lora=True]",
    "ia3[output_lora=True]",
    "double_seq_bn[cross_adapter=True]",
    "seq_bn[reduction_factor={'default': 16, '1': 8}]",
    "seq_bn[leave_out=[0]]",
    "lora[attn_matrices=['q','k','v']]",
    "prefix_tuning[flat=True, prefix_length=5]",
]
# Models whose saved-key listing is stored (keys are the bulk of the file).
KEY_LISTING_MODELS = {"bert", "gpt2", "bart", "llama", "roberta"}
ADAPTER_NAME = "a"
BATCH_SHAPE = (2, 8)


def _build_model(spec: dict[str, Any]) -> torch.nn.Module:
    config = getattr(transformers, spec["config_class"])(**spec["kwargs"])
    torch.manual_seed(SEED)
    model = getattr(transformers, spec["model_class"])(config)
    adapters.init(model)
    return model


def _forward(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(SEED)
    input_ids = torch.randint(3, 99, BATCH_SHAPE, generator=gen)
    attention_mask = torch.ones(BATCH_SHAPE, dtype=torch.long)
    with torch.no_grad():
        model(input_ids=input_ids, attention_mask=attention_mask)


def measure(spec: dict[str, Any], ident: str, with_keys: bool) -> dict[str, Any]:
    model = _build_model(spec)
    base_numel = sum(p.numel() for p in model.parameters())
    stage = "add"
    entry: dict[str, Any] = {}
    try:
        model.add_adapter(ADAPTER_NAME, config=ident)
        entry["added_params"] = sum(p.numel() for p in model.parameters()) - base_numel
        stage = "train_adapter"
        model.train_adapter(ADAPTER_NAME)
        entry["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        stage = "save"
        with tempfile.TemporaryDirectory() as tmp:
            model.save_adapter(tmp, ADAPTER_NAME)
            state = torch.load(
                os.path.join(tmp, "pytorch_adapter.bin"), map_location="cpu", weights_only=True
            )
        entry["saved"] = sum(t.numel() for t in state.values())
        if with_keys:
            entry["saved_keys"] = {k: list(t.shape) for k, t in state.items()}
        stage = "forward"
        _forward(model)
    except Exception as exc:
        entry["error"] = {"stage": stage, **_err(exc)}
    return entry


def build_param_counts() -> dict[str, Any]:
    models_header = {}
    for name, spec in MODELS.items():
        config = getattr(transformers, spec["config_class"])(**spec["kwargs"])
        full = config.to_dict()
        full.pop("transformers_version", None)
        models_header[name] = {**spec, "full_config": full}

    results: dict[str, dict[str, Any]] = {}
    for name, spec in MODELS.items():
        results[name] = {}
        for ident in SEED_IDENTIFIERS + EXTRA_IDENTIFIERS:
            results[name][ident] = measure(spec, ident, name in KEY_LISTING_MODELS)
    return {
        "description": (
            "Per tiny model and adapter config string: fresh model (torch seed fixed), "
            "adapters.init(model), add_adapter(name, config=<string>), train_adapter(name). "
            "trainable = numel of parameters with requires_grad; added_params = numel of all "
            "parameters after add minus before (frozen shared parameters included); saved = numel "
            "of everything in pytorch_adapter.bin written by save_adapter; saved_keys = {key: "
            "shape}. Then one forward pass on input_ids of shape batch_shape with an all-ones "
            "attention mask. error.stage says which step raised (add, train_adapter, save, "
            "forward); values measured before the failing step are kept."
        ),
        "generator": "scripts/reference/make_fixtures.py",
        "versions": VERSIONS,
        "adapter_name": ADAPTER_NAME,
        "batch_shape": list(BATCH_SHAPE),
        "models": models_header,
        "identifiers": SEED_IDENTIFIERS + EXTRA_IDENTIFIERS,
        "results": results,
    }


# ---------------------------------------------------------------------------------------------


def _write(path: Path, data: dict[str, Any], one_case_per_line: str | None = None) -> None:
    """Write JSON deterministically (no sort_keys: dict order is part of the data)."""
    if one_case_per_line is None:
        text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    else:
        head = {k: v for k, v in data.items() if k != one_case_per_line}
        head_text = json.dumps(head, indent=1, ensure_ascii=False)
        rows = ",\n".join(json.dumps(c, ensure_ascii=False) for c in data[one_case_per_line])
        text = head_text[:-2] + f',\n "{one_case_per_line}": [\n{rows}\n ]\n}}\n'
        assert json.loads(text) == data
    path.write_text(text, encoding="utf-8")


def main() -> int:
    _quiet()
    torch.manual_seed(SEED)
    random.seed(SEED)
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    corpus = build_corpus()
    _write(OUT_DIR / "config_corpus.json", corpus, one_case_per_line="cases")
    t1 = time.perf_counter()
    counts = build_param_counts()
    _write(OUT_DIR / "param_counts.json", counts)
    t2 = time.perf_counter()

    print(
        f"config_corpus.json: {corpus['counts']} ({t1 - t0:.1f}s)\n"
        f"param_counts.json: {len(counts['results'])} models x {len(counts['identifiers'])} "
        f"configs ({t2 - t1:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
