"""Sweep expressions: grid expansion, all invalid points at once, Optuna trials, the CLI."""

from __future__ import annotations

import io
import re

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, LoRAConfig, dumps, load, parse, suggest, sweep
from adapter_dsl.cli import main

ISSUE = "lora[r=choice(4, 8, 16), alpha=range(8, 33, 8)]|seq_bn[reduction_factor=choice(8, 16)]"


def problems(text: str) -> list[adapter_dsl.Problem]:
    with pytest.raises(ConfigError) as info:
        sweep(text)
    return list(info.value.problems)


def test_the_grid_is_the_product_in_order() -> None:
    configs = sweep(ISSUE)
    assert len(configs) == 3 * 4 * 2
    expected = [
        load(f"lora[r={r}, alpha={a}]|seq_bn[reduction_factor={f}]")
        for r in (4, 8, 16)
        for a in (8, 16, 24, 32)
        for f in (8, 16)
    ]
    assert configs == expected
    assert sweep("lora") == [LoRAConfig()]
    lists = sweep("lora[attn_matrices=choice(['q'], ['q', 'k', 'v'])]")
    assert lists == [load("lora[attn_matrices=['q']]"), load("lora[attn_matrices=['q', 'k', 'v']]")]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("lora[r=range(3)]", [0, 1, 2]),
        ("lora[r=range(16, 0, -4)]", [16, 12, 8, 4]),
        ("lora[dropout=range(0.0, 0.3, 0.1)]", [0.0, 0.1, 0.2]),
        ("lora[dropout=range(0.1, 0.45, 0.1)]", [0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_range_is_hydras(text: str, values: list[float]) -> None:
    from adapter_dsl.sweeps import dimensions

    (dim,) = dimensions(text)[1]
    assert dim.values == tuple(values)  # exactly: 0.1 + 2 * 0.1 is written 0.3


def test_every_invalid_point_is_reported_at_once_with_its_location() -> None:
    text = "lora[composition_mode='scale', r=choice(1, 8), alpha=choice(1, 0)]"
    found = problems(text)
    # Three of the four points are invalid: (r=1, alpha=0), (r=8, alpha=1), (r=8, alpha=0).
    assert [p.message.split(":")[0] for p in found] == [
        "for r=1, alpha=0",
        "for r=8, alpha=1",
        "for r=8, alpha=0",
    ]
    messages = [p.message for p in found]
    assert any(m.startswith("for r=8, alpha=1: ") for m in messages)
    assert all(m.startswith("for ") for m in messages)
    r_problem = next(p for p in found if "r must be 1" in p.message)
    assert r_problem.location.span == (text.index("choice(1, 8)"), text.index("choice(1, 8)") + 12)
    rendered = str(ConfigError(found, source=text))
    assert "                                 ^^^^^^^^^^^^" in rendered


def test_intervals_have_no_grid() -> None:
    (problem,) = problems("lora[r=choice(4, 8), dropout=interval(0.0, 0.1)]")
    assert problem.code == "sweep_continuous"
    assert "suggest" in (problem.suggestion or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lora[r=chioce(4, 8)]", "unknown sweep function 'chioce'"),
        ("lora[r=range(1, 9, 0)]", "step cannot be 0"),
        ("lora[r=range('a', 3)]", "range() takes numbers"),
        ("lora[r=interval(8)]", "interval() takes interval(low, high)"),
        ("lora[dropout=log_interval(0.0, 0.1)]", "needs 0 < low < high"),
        ("lora[attn_matrices=[choice('q', 'k')]]", "whole value of a key"),
        ("lora[r=choice(choice(1, 2))]", "cannot be nested"),
        ("lora[r=range(100000)]", "range() has 100000 values"),
    ],
)
def test_bad_sweeps(text: str, message: str) -> None:
    assert message in problems(text)[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lora[r=1x]", "expected one of ',', ']'"),  # no ')': nothing is open to close
        ("lora[r=choice(1, 2]", "expected one of ')', ','"),
    ],
)
def test_closers_in_messages_are_the_open_ones(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        sweep(text)


def test_a_config_string_refuses_sweeps() -> None:
    with pytest.raises(ConfigError) as info:
        parse("lora[r=choice(4, 8)]")
    (problem,) = info.value.problems
    assert problem.code == "sweep_in_config" and problem.location.span == (7, 19)
    assert "adapter_dsl.sweep()" in (problem.suggestion or "")


def test_suggest_with_a_real_optuna_study() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    text = (
        "lora[r=choice(4, 8, 16), alpha=range(8, 33, 8), dropout=interval(0.0, 0.2), "
        "attn_matrices=choice(['q', 'v'], ['q', 'k', 'v'])]|seq_bn[reduction_factor=log_interval(2, 64)]"
    )
    seen: list[adapter_dsl.AdapterConfig] = []

    def objective(trial: object) -> float:
        config = suggest(trial, text)
        seen.append(config)
        return float(config.configs[0].r)  # type: ignore[attr-defined]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=8)
    assert len(seen) == 8
    params = study.trials[0].params
    assert set(params) == {"r", "alpha", "dropout", "attn_matrices", "reduction_factor"}
    lora, bn = seen[0].configs  # type: ignore[attr-defined]
    assert (lora.r, lora.alpha, lora.dropout) == (params["r"], params["alpha"], params["dropout"])
    assert bn.reduction_factor == params["reduction_factor"]
    assert isinstance(params["reduction_factor"], int) and 2 <= params["reduction_factor"] <= 64
    assert params["attn_matrices"] in ("['q', 'v']", "['q', 'k', 'v']")


def test_suggest_names_clashing_keys_by_method_and_locates_bad_points() -> None:
    optuna = pytest.importorskip("optuna")
    trial = optuna.trial.FixedTrial({"lora.dropout": 0.1, "seq_bn.dropout": 0.2, "r": 0})
    text = "lora[dropout=choice(0.1, 0.2), r=range(0, 4)]|seq_bn[dropout=choice(0.1, 0.2)]"
    with pytest.raises(ConfigError) as info:
        suggest(trial, text)
    (problem,) = info.value.problems
    assert problem.message.startswith("for lora.dropout=0.1, r=0, seq_bn.dropout=0.2: ")
    ok = optuna.trial.FixedTrial({"lora.dropout": 0.1, "seq_bn.dropout": 0.2, "r": 2})
    assert dumps(suggest(ok, text)) == "lora[r=2, dropout=0.1]|seq_bn[dropout=0.2]"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_cli_prints_one_config_per_line() -> None:
    code, out, _ = run("sweep", "lora[r=choice(4, 8), alpha=range(8, 17, 8)]")
    assert code == 0
    assert out.splitlines() == ["lora[r=4]", "lora[r=4, alpha=16]", "lora", "lora[alpha=16]"]
    code, out, err = run("sweep", "lora[composition_mode='scale', r=choice(1, 8)]")
    assert code == 1 and out == ""
    assert "for r=8: composition_mode='scale'" in err


def test_the_parser_knows_the_sweep_vocabulary() -> None:
    from adapter_dsl.sweeps import SWEEP_FUNCTIONS
    from adapter_dsl.syntax.parser import SWEEP_CALLS

    assert set(SWEEP_FUNCTIONS) == SWEEP_CALLS
