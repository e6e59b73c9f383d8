"""HfArgumentParser training scripts: AdapterArguments and setup_adapter_training."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from adapter_dsl import ConfigError, LoRAConfig
from adapter_dsl.backend import add_adapter, list_adapters, save_adapter
from adapter_dsl.backend.state import peek_state
from adapter_dsl.integrations import AdapterArguments, setup_adapter_training

from .conftest import make_model

transformers = pytest.importorskip("transformers")


def parse(*argv: str) -> AdapterArguments:
    parser = transformers.HfArgumentParser(AdapterArguments)
    (args,) = parser.parse_args_into_dataclasses(list(argv))
    return args


def test_fields_and_defaults_are_the_reference_ones() -> None:
    args = parse()
    assert (args.train_adapter, args.load_adapter, args.adapter_config) == (False, "", "seq_bn")
    assert (args.load_lang_adapter, args.lang_adapter_config) == (None, None)
    args = parse("--train_adapter", "--adapter_config", "lora[r=16]")
    assert args.train_adapter and args.adapter_config.config == LoRAConfig(r=16)


def test_a_bad_adapter_config_fails_at_argument_parsing() -> None:
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as info:
        parse("--train_adapter", "--adapter_config", "lora[r=16, compositon_mode='scale']")
    assert info.value.code == 2
    text = err.getvalue()
    assert text.startswith("usage: ")
    assert "error: argument --adapter_config/--adapter-config: invalid adapter config" in text
    assert "did you mean 'composition_mode'?" in text
    assert "    lora[r=16, compositon_mode='scale']\n               ^^^^^^^^^^^^^^^" in text


def test_built_in_code_it_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'lora'\?"):
        AdapterArguments(adapter_config="lorra[r=2]")


def test_setup_adds_trains_and_activates() -> None:
    model = make_model("bert")
    names = setup_adapter_training(
        model,
        parse("--train_adapter", "--adapter_config", "lora[r=4]"),
        "task",
        adapter_config_kwargs={"alpha": 16},
    )
    assert names == ("task", None)
    state = peek_state(model)
    assert state is not None and state.active == ("task",)
    assert state.adapters["task"].config == LoRAConfig(r=4, alpha=16)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("task" in n for n in trainable)
    # Called again (a resumed script), the existing adapter is kept.
    assert setup_adapter_training(model, parse("--train_adapter"), "task") == ("task", None)
    assert list_adapters(model) == ["task"]


def test_setup_loads_task_and_language_adapters(tmp_path: Path) -> None:
    source = make_model("bert")
    add_adapter(source, "task", "seq_bn[reduction_factor=4]")
    add_adapter(source, "en", "seq_bn_inv")
    save_adapter(source, "task", tmp_path / "task")
    save_adapter(source, "en", tmp_path / "en")
    model = make_model("bert")
    args = parse(
        "--train_adapter",
        "--load_adapter",
        str(tmp_path / "task"),
        "--load_lang_adapter",
        str(tmp_path / "en"),
        "--lang_adapter_config",
        "seq_bn_inv",
    )
    assert setup_adapter_training(model, args, "mytask") == ("mytask", "en")
    state = peek_state(model)
    assert state is not None and state.active == ("en", "mytask")  # Stack(en, mytask)
    assert not any(p.requires_grad for p in state.adapters["en"].parameters())


def test_without_train_adapter_nothing_happens_and_loading_is_refused() -> None:
    model = make_model("bert")
    assert setup_adapter_training(model, parse(), "task") == (None, None)
    assert list_adapters(model) == []
    with pytest.raises(ConfigError, match="only be loaded in adapter training mode"):
        setup_adapter_training(model, parse("--load_adapter", "x"), "task")
