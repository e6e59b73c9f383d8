"""Randomised differential cases recorded from the reference library (adapters 1.3.0).

Run from the repository root, inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/make_differential_corpus.py

The other corpora change one field at a time; these cases set random subsets of several fields
at once to values a user would write (ints where floats are declared, per-layer mappings,
lists), so that combinations are covered. It writes ``tests/fixtures/reference/
differential_corpus.json`` with four parts, each what the reference returned or raised:

* ``configs``: config strings ``name[k=v, ...]``, the preset's ``to_dict()`` with the same
  fields changed, partial dicts (``architecture`` plus the changed fields), two-member unions
  as strings and as ``{"architecture": "union", "configs": [...]}``, and ``AdapterConfig.load
  (name, **kwargs)`` -> ``to_dict()`` or the error, and ``FORMATS``, ways of writing a string;
* ``fusion``: ``AdapterFusionConfig.load`` on strings, dicts and keyword arguments;
* ``setups``: random composition blocks (``to_dict()``, ``first``/``last``/``flatten``,
  ``parallel_channels``, whether ``parse_composition`` accepts them);
* ``counts``: trainable parameters after ``add_adapter`` + ``train_adapter`` for a sample of
  the accepted config strings on the tiny models of ``make_fixtures.py``, then one forward
  pass; where a step raises, its stage and error (counts measured before it are kept).

Deterministic: one seeded generator, dict order kept; re-running gives the same file.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

from adapters import ADAPTER_CONFIG_MAP, AdapterConfig, AdapterFusionConfig
from adapters.composition import parse_composition
from adapters.configuration.adapter_config import ConfigUnion
from adapters.configuration.adapter_fusion_config import ADAPTERFUSION_CONFIG_MAP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_composition_fixtures as composition
import make_fixtures as fixtures

OUT = fixtures.OUT_DIR / "differential_corpus.json"
SEED = 20261201
PER_IDENTIFIER = 4  # string cases per identifier; the first DICTS_PER_IDENTIFIER also as dicts
DICTS_PER_IDENTIFIER = 2
UNIONS = 40  # as strings; the first UNION_DICTS also as union dicts
UNION_DICTS = 10
KWARGS_PER_IDENTIFIER = 2
FUSION_PER_PRESET = 12
SETUPS = 120
COUNT_SAMPLE = 40
COUNT_MODELS = ("bert", "gpt2", "bart", "llama")

BOOL = [True, False]
# Valid values per field, as a user would write them (ints for floats included on purpose).
VALUES: dict[str, list[Any]] = {
    "mh_adapter": BOOL,
    "output_adapter": BOOL,
    "original_ln_before": BOOL,
    "original_ln_after": BOOL,
    "ln_before": BOOL,
    "ln_after": BOOL,
    "is_parallel": BOOL,
    "use_gating": BOOL,
    "adapter_residual_before_ln": BOOL,
    "cross_adapter": BOOL,
    "reduction_factor": [2, 8, 16.0, 0.5, 3, {"default": 16, "1": 2}, {"0": 2, "default": 8.0}],
    "non_linearity": ["relu", "gelu", "swish", "tanh", "silu", "gelu_new", "leakyrelu"],
    "init_weights": ["bert", "mam_adapter", "houlsby", "lora", "ia3", "vera"],
    "init_weights_seed": [None, 42, 7],
    "scaling": [1.0, 2.0, 0.5, "learned", "channel", 2],
    "residual_before_ln": [True, False, "post_add"],
    "inv_adapter": [None, "nice"],
    "inv_adapter_reduction_factor": [None, 2, 4.0],
    "leave_out": [[], [0], [1], [11], [0, 5, 11]],
    "dropout": [0.0, 0.1, 0.5, 0, 1e-2],
    "phm_layer": BOOL,
    "phm_dim": [2, 4, 8],
    "factorized_phm_W": BOOL,
    "shared_W_phm": BOOL,
    "shared_phm_rule": BOOL,
    "factorized_phm_rule": BOOL,
    "phm_c_init": ["normal", "uniform"],
    "phm_init_range": [0.01, 0.0001, 1],
    "learn_phm": BOOL,
    "hypercomplex_nonlinearity": ["glorot-uniform", "glorot-normal", "normal"],
    "phm_rank": [1, 2, 4],
    "phm_bias": BOOL,
    "stochastic_depth": [0.0, 0],
    "encoder_prefix": BOOL,
    "cross_prefix": BOOL,
    "flat": BOOL,
    "prefix_length": [1, 5, 10, 30],
    "bottleneck_size": [32, 64, 512, 800],
    "shared_gating": BOOL,
    "prompt_length": [1, 5, 10],
    "prompt_init": ["random_uniform", "from_string"],
    "prompt_init_text": [None, "hello world"],
    "combine": ["prefix", "prefix_after_bos"],
    "selfattn_lora": BOOL,
    "intermediate_lora": BOOL,
    "output_lora": BOOL,
    "r": [1, 2, 4, 8, 16],
    "alpha": [1, 8, 16, 32],
    "attn_matrices": [["q"], ["k", "v"], ["q", "v"], ["q", "k", "v"], ["v"]],
    "composition_mode": ["add", "scale"],
    "use_dora": BOOL,
    "vera_d": [None, 0.1, 0.5, 1],
    "vera_b": [None, 0.0, 0.1],
    "dtype": [None, "float32", "bfloat16"],
    "n_up_projection": [1, 2, 3],
    "task_specific_matrix_type": ["singular_values", "linear"],
    "weights_sharpness": [0.05, 0.1, 1],
    "layers": ["all", [0], [0, 1], [1]],
    "prefix_positions": [0, 1, 3],
    "suffix_positions": [0, 1, 2],
    "orthogonality": BOOL,
    "tied_weights": BOOL,
    "output_reft": BOOL,
}
FUSION_VALUES: dict[str, list[Any]] = {
    "key": BOOL,
    "query": BOOL,
    "value": BOOL,
    "query_before_ln": BOOL,
    "regularization": BOOL,
    "residual_before": BOOL,
    "temperature": BOOL,
    "value_before_softmax": BOOL,
    "value_initialized": [True, False, "True", "False"],
    "dropout_prob": [None, 0.1, 0.0, 0, 0.5],
}
NAMES = ["a", "b", "c", "d"]
# Ways of writing a string that a user might try: spacing, Python literals, numbers in the
# other type, bounds.
FORMATS = [
    "lora[r=8,alpha=16]",
    "lora[ r=8 ]",
    "lora[r=8,]",
    "lora[dropout=1e-2]",
    "lora[dropout=.1]",
    "lora[dropout=1.]",
    "seq_bn[reduction_factor={1: 2, 'default': 16}]",
    "seq_bn[leave_out=(0, 1)]",
    "lora[attn_matrices=('q','v')]",
    "loreft[layers=(0,)]",
    'lora[attn_matrices=["q", "v"]]',
    "seq_bn[init_weights_seed=+3]",
    "seq_bn[reduction_factor=-2]",
    "lora[r=0]",
    "lora[r=8.0]",
    "lora[alpha=16.0]",
    "prefix_tuning[prefix_length=10.0]",
    "seq_bn[leave_out=[1, 1]]",
    "seq_bn[leave_out=[-1]]",
    "lora | seq_bn",
    "lora[use_gating=1]",
    "lora[r=True]",
    "seq_bn[scaling=1]",
    "seq_bn[scaling='2.0']",
    "seq_bn[dropout=None]",
    "lora[vera_d=0, vera_b=0]",
    "Lora[r=2]",
    "lora[]",
    "prompt_tuning[prompt_length=0]",
    "ia3[r=1.0]",
    "lora[init_weights_seed=1.0]",
]


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _outcome(fn: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "to_dict": _json(fn().to_dict())}
    except Exception as exc:  # the reference's own error, recorded
        return {"ok": False, "error": fixtures._err(exc)}


def _overrides(rng: random.Random, name: str, most: int) -> dict[str, Any]:
    fields = [k for k in ADAPTER_CONFIG_MAP[name].to_dict() if k in VALUES]
    chosen = rng.sample(fields, rng.randint(1, min(most, len(fields))))
    return {k: copy.deepcopy(rng.choice(VALUES[k])) for k in chosen}


def config_cases(rng: random.Random) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    single = [n for n, c in ADAPTER_CONFIG_MAP.items() if not isinstance(c, ConfigUnion)]

    def add(kind: str, value: Any, fn: Any) -> None:
        cases.append({"id": f"{kind}-{len(cases):04d}", "kind": kind, "input": value, **fn()})

    for name in single:
        preset = ADAPTER_CONFIG_MAP[name]
        for i in range(PER_IDENTIFIER):
            over = _overrides(rng, name, 4)
            text = fixtures._fmt(name, over)
            add("string", text, lambda t=text: _outcome(lambda: AdapterConfig.load(t)))
            if i >= DICTS_PER_IDENTIFIER:
                continue
            full = {**preset.to_dict(), **copy.deepcopy(over)}
            add("dict", _json(full), lambda d=full: _outcome(lambda: AdapterConfig.load(dict(d))))
            if "architecture" in full:
                part = {"architecture": full["architecture"], **copy.deepcopy(over)}
                add("partial", part, lambda d=part: _outcome(lambda: AdapterConfig.load(dict(d))))
        for _ in range(KWARGS_PER_IDENTIFIER):
            over = _overrides(rng, name, 3)
            value = {"name": name, "kwargs": over}
            add(
                "kwargs",
                _json(value),
                lambda n=name, o=over: _outcome(lambda: AdapterConfig.load(n, **copy.deepcopy(o))),
            )
    for text in FORMATS:
        add("format", text, lambda t=text: _outcome(lambda: AdapterConfig.load(t)))
    for i in range(UNIONS):
        a, b = rng.sample(single, 2)
        parts = [
            fixtures._fmt(n, _overrides(rng, n, 2) if rng.random() < 0.6 else {}) for n in (a, b)
        ]
        text = "|".join(parts)
        add("union", text, lambda t=text: _outcome(lambda: AdapterConfig.load(t)))
        if i >= UNION_DICTS:
            continue
        members = [ADAPTER_CONFIG_MAP[n].to_dict() for n in (a, b)]
        union = {"architecture": "union", "configs": _json(members)}
        add(
            "union_dict",
            union,
            lambda d=union: _outcome(lambda: AdapterConfig.load(copy.deepcopy(d))),
        )
    return cases


def fusion_cases(rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, preset in ADAPTERFUSION_CONFIG_MAP.items():
        for i in range(FUSION_PER_PRESET):
            chosen = rng.sample(list(FUSION_VALUES), rng.randint(1, 4))
            over = {k: rng.choice(FUSION_VALUES[k]) for k in chosen}
            form = i % 3
            if form == 0:
                spec: Any = fixtures._fmt(name, over)
                kwargs: dict[str, Any] = {}
            elif form == 1:
                spec, kwargs = {**preset.to_dict(), **over}, {}
            else:
                spec, kwargs = name, over
            outcome = _outcome(
                lambda s=spec, k=kwargs: AdapterFusionConfig.load(copy.deepcopy(s), **k)
            )
            rows.append({"spec": spec, "kwargs": kwargs, **outcome})
    return rows


def _tree(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.35:
        return repr(rng.choice(NAMES))
    kind = rng.choice(["Stack", "Fuse", "Split", "BatchSplit", "Average", "Parallel"])
    children = [_tree(rng, depth - 1) for _ in range(rng.randint(1, 3))]
    extra = ""
    if kind == "Split":
        sizes = [rng.randint(1, 5) for _ in children]
        extra = f", splits={rng.choice([rng.randint(1, 8), sizes])!r}"
    elif kind == "BatchSplit":
        extra = f", batch_sizes={[rng.randint(1, 4) for _ in children]!r}"
    elif kind == "Average" and rng.random() < 0.4:
        extra = f", weights={[rng.choice([1, 0.5, 2.0, 0.25]) for _ in children]!r}"
    return f"{kind}({', '.join(children)}{extra})"


def setup_cases(rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < SETUPS:
        expr = _tree(rng, rng.randint(1, 3))
        if not expr.endswith(")") or expr in seen:
            continue
        seen.add(expr)
        block = eval(expr, dict(composition.NAMESPACE))
        row: dict[str, Any] = {"expr": expr, **composition._describe(block)}
        try:
            parse_composition(block)
            row["valid"] = True
        except (ValueError, TypeError) as exc:
            row["valid"] = False
            row["error"] = composition._error(exc)
        rows.append(row)
    return rows


def count_cases(rng: random.Random, configs: list[dict[str, Any]]) -> dict[str, Any]:
    accepted = [c["input"] for c in configs if c["kind"] in ("string", "union") and c["ok"]]
    sample = rng.sample(accepted, min(COUNT_SAMPLE, len(accepted)))
    results: dict[str, dict[str, Any]] = {}
    for model in COUNT_MODELS:
        results[model] = {}
        for text in sample:
            net = fixtures._build_model(fixtures.MODELS[model])
            entry: dict[str, Any] = {}
            stage = "add"
            try:
                net.add_adapter("a", config=text)
                stage = "train_adapter"
                net.train_adapter("a")
                entry["trainable"] = sum(p.numel() for p in net.parameters() if p.requires_grad)
                stage = "forward"
                net.set_active_adapters("a")
                fixtures._forward(net)
            except Exception as exc:
                entry["error"] = {"stage": stage, **fixtures._err(exc)}
            results[model][text] = entry
    return {"models": {m: fixtures.MODELS[m] for m in COUNT_MODELS}, "results": results}


def _write(data: dict[str, Any]) -> None:
    """One case per line (lists, and one line per model of the counts): small, readable diffs."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list):
            body = ",\n".join(json.dumps(row, ensure_ascii=False) for row in value)
            lines.append(f"{json.dumps(key)}: [\n{body}\n]")
        elif key == "counts":
            models = json.dumps(value["models"], ensure_ascii=False)
            per_model = ",\n".join(
                f"{json.dumps(m)}: {json.dumps(r, ensure_ascii=False)}"
                for m, r in value["results"].items()
            )
            lines.append(f'"counts": {{"models": {models}, "results": {{\n{per_model}\n}}}}')
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == data
    OUT.write_text(text, encoding="utf-8")


def main() -> int:
    fixtures._quiet()
    warnings.filterwarnings("ignore")
    rng = random.Random(SEED)
    configs = config_cases(rng)
    data = {
        "description": (
            "Random multi-field cases and what adapters 1.3.0 returned or raised; see "
            "scripts/reference/make_differential_corpus.py."
        ),
        "generator": "scripts/reference/make_differential_corpus.py",
        "versions": fixtures.VERSIONS,
        "configs": configs,
        "fusion": fusion_cases(rng),
        "setups": setup_cases(rng),
        "counts": count_cases(rng, configs),
    }
    rows = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    _write(data)
    print(f"{OUT.name}: {rows}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
