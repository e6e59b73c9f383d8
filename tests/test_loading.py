"""Loading from dicts, JSON files and saved-adapter envelopes; lenient mode; file locations."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import adapter_dsl as ad
from adapter_dsl import ConfigError, ConfigWarning, load, load_lenient


def error_of(spec: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(spec)
    return info.value


def write(tmp_path: Path, data: object, name: str = "adapter_config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2) if not isinstance(data, str) else data)
    return path


def test_dict_round_trip_keeps_the_preset_class() -> None:
    for identifier in (
        "seq_bn",
        "double_seq_bn",
        "par_bn",
        "compacter",
        "ia3",
        "vera",
        "dora",
        "loreft",
        "direft",
        "prefix_tuning",
    ):
        config = load(identifier)
        again = load(config.to_dict())
        assert again == config
        assert type(again) is type(config), identifier


def test_bottleneck_dicts_without_architecture() -> None:
    d = load("seq_bn").to_dict()
    assert "architecture" not in d
    assert load(dict(d, architecture=None)) == load("seq_bn")
    # The reference raises KeyError on "bottleneck"; it means what it says.
    assert load(dict(d, architecture="bottleneck")) == load("seq_bn")


def test_partial_dicts_use_family_defaults() -> None:
    assert load({"architecture": "lora", "r": 4}) == load("lora[r=4]")
    error = error_of({"reduction_factor": 8})
    missing = sorted(p.location.path[0] for p in error.problems if p.code == "missing")
    assert missing == ["mh_adapter", "non_linearity", "output_adapter"]


def test_dict_types_are_strict() -> None:
    d = load("seq_bn").to_dict()
    error = error_of(dict(d, reduction_factor="16"))
    assert error.problems[0].location.path == ("reduction_factor",)
    error = error_of({"architecture": "lora", "use_gating": "true"})
    assert "valid boolean" in str(error)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    error = error_of({"architecture": "lorra"})
    (problem,) = error.problems
    assert problem.code == "unknown_architecture"
    assert problem.location.pointer == "/architecture"
    assert "'prefix_tuning'" in (problem.expected or "")
    assert problem.suggestion == "did you mean 'lora'?"


def test_union_dicts_locate_member_problems() -> None:
    d = {
        "architecture": "union",
        "configs": [load("lora").to_dict(), {"architecture": "lora", "r": 0}],
    }
    error = error_of(d)
    assert [p.location.pointer for p in error.problems] == ["/configs/1/r"]
    assert load(
        {
            "architecture": "union",
            "configs": [load("prefix_tuning").to_dict(), load("par_bn").to_dict()],
        }
    ) == load("prefix_tuning|par_bn")
    error = error_of({"architecture": "union", "configs": []})
    assert "at least one config" in str(error)


def test_class_from_dict() -> None:
    assert ad.IA3Config.from_dict(load("ia3").to_dict()) == load("ia3")
    assert ad.AdapterConfig.from_dict(load("mam").to_dict()) == load("mam")
    with pytest.raises(ConfigError, match="cannot be read as LoRAConfig"):
        ad.LoRAConfig.from_dict(load("seq_bn").to_dict())


def test_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, load("lora[r=4]").to_dict())
    assert load(path) == load("lora[r=4]")
    assert load(str(path)) == load("lora[r=4]")


def test_saved_adapter_envelope(tmp_path: Path) -> None:
    envelope = {
        "config": load("seq_bn").to_dict(),
        "hidden_size": 32,
        "model_class": "BertModel",
        "model_name": "",
        "model_type": "bert",
        "name": "a",
        "version": "adapters.1.3.0",
    }
    assert load(write(tmp_path, envelope)) == load("seq_bn")


def test_versionless_files_get_the_reference_gelu_rename(tmp_path: Path) -> None:
    config = dict(load("seq_bn").to_dict(), non_linearity="gelu")
    assert load(write(tmp_path, {"config": config, "name": "a"})).non_linearity == "gelu_new"
    versioned = {"config": config, "name": "a", "version": "adapters.1.3.0"}
    assert load(write(tmp_path, versioned, "v.json")).non_linearity == "gelu"


def test_old_lora_files_get_the_alpha_fix(tmp_path: Path) -> None:
    old = {"config": load("lora[r=4, alpha=16]").to_dict(), "version": "adapters.1.0.1"}
    assert load(write(tmp_path, old)).alpha == 4
    new = {"config": load("lora[r=4, alpha=16]").to_dict(), "version": "adapters.1.1.0"}
    assert load(write(tmp_path, new, "n.json")).alpha == 16


def test_schema_key_is_allowed(tmp_path: Path) -> None:
    data = dict(load("lora").to_dict(), **{"$schema": "./schemas/adapter-config.schema.json"})
    assert load(write(tmp_path, data)) == load("lora")


def test_file_problems_carry_line_column_and_caret(tmp_path: Path) -> None:
    text = '{\n  "architecture": "lora",\n  "r": -3,\n  "alpah": 8\n}\n'
    path = write(tmp_path, text)
    error = error_of(path)
    by_pointer = {p.location.pointer: p for p in error.problems}
    assert by_pointer["/r"].location.line == 3
    assert by_pointer["/r"].location.column == 8
    assert by_pointer["/alpah"].suggestion == "did you mean 'alpha'?"
    assert by_pointer["/alpah"].location.line == 4
    assert by_pointer["/alpah"].location.column == 3  # the key itself, not its value
    rendered = str(error)
    assert f"{path}:3:8 at /r" in rendered
    assert '  "r": -3,' in rendered
    assert "       ^^" in rendered


def test_invalid_json_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, '{"architecture": "lora",\n "r": 4,,}')
    (problem,) = error_of(path).problems
    assert problem.code == "json_syntax"
    assert (problem.location.line, problem.location.file) == (2, str(path))


def test_duplicate_json_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '{"architecture": "lora", "r": 4, "r": 8}')
    assert "appears twice" in str(error_of(path))


def test_missing_file() -> None:
    error = error_of("nowhere/adapter_config.json")
    assert error.problems[0].code == "file_not_found"


def test_peft_configs_are_recognised() -> None:
    error = error_of({"peft_type": "LORA", "r": 8})
    assert "PEFT config" in str(error)


def test_lenient_mode_drops_unknown_keys_with_warnings(tmp_path: Path) -> None:
    data = dict(load("lora").to_dict(), future_option=True)
    config, dropped = load_lenient(data)
    assert config == load("lora")
    (problem,) = dropped
    assert (problem.code, problem.location.pointer) == ("dropped_key", "/future_option")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load(data, strict=False) == load("lora")
    assert [type(w.message) for w in caught] == [ConfigWarning]
    with pytest.raises(ConfigError):
        load(data)
    # Files: the dropped key is located in the text.
    path = write(tmp_path, {"config": data, "version": "adapters.1.3.0"})
    _, dropped = load_lenient(path)
    assert dropped[0].location.pointer == "/config/future_option"
    assert dropped[0].location.line is not None


def test_lenient_mode_still_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        load_lenient({"architecture": "lora", "r": 0})


def test_caller_dict_is_not_mutated() -> None:
    data = {"config": dict(load("seq_bn").to_dict(), non_linearity="gelu"), "name": "a"}
    before = json.dumps(data, sort_keys=True)
    load(data, r=None) if False else load(data)
    assert json.dumps(data, sort_keys=True) == before


def test_absurd_nesting_is_a_config_error(tmp_path: Path) -> None:
    nested: list[object] = []
    cursor = nested
    for _ in range(20_000):
        cursor.append([])
        cursor = cursor[0]  # type: ignore[assignment]
    assert error_of({"architecture": "lora", "r": nested}).problems[0].code == "too_deep"
    path = write(tmp_path, '{"r": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert error_of(path).problems[0].code == "too_deep"


def test_saved_envelope_with_metadata_keys() -> None:
    # The reference adds its meta_dict entries (e.g. "task") next to the config.
    envelope = {"config": load("lora").to_dict(), "version": "adapters.1.3.0", "task": "sst2"}
    assert load(envelope) == load("lora")
    assert load({"config": "lora[r=4]"}) == load("lora[r=4]")
    assert error_of({"config": 3}).problems[0].location.pointer == "/config"


def test_one_member_union_dict_is_its_member() -> None:
    assert load({"architecture": "union", "configs": [load("lora").to_dict()]}) == load("lora")


def test_non_string_keys() -> None:
    assert "keys must be strings" in str(error_of({1: 2}))


def test_path_like_strings_and_directories(tmp_path: Path) -> None:
    assert error_of("runs/x/adapter_config").problems[0].code == "file_not_found"
    write(tmp_path, {"config": load("seq_bn").to_dict(), "version": "adapters.1.3.0"})
    assert load(str(tmp_path)) == load("seq_bn")


def test_utf8_bom_files(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text("\ufeff" + json.dumps(load("lora").to_dict()), encoding="utf-8")
    assert load(path) == load("lora")


def test_lenient_mode_reports_dropped_union_keys() -> None:
    d = {
        "architecture": "union",
        "configs": [load("lora").to_dict(), load("seq_bn").to_dict()],
        "x": 1,
    }
    config, dropped = load_lenient(d)
    assert config == load("lora|seq_bn")
    assert [p.location.pointer for p in dropped] == ["/x"]
