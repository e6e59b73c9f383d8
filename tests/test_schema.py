"""The JSON Schemas under schemas/: generated, current, valid, and in agreement with load()."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import adapter_dsl
from adapter_dsl.registry import IDENTIFIERS
from adapter_dsl.schema import FILENAMES, KINDS, SCHEMA_IDS, build_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
CORPUS = ROOT / "tests" / "fixtures" / "reference" / "config_corpus.json"
EDITOR = ROOT / "tests" / "editor"
VARIANTS = ("bottleneck", "prefix_tuning", "prompt_tuning", "lora", "mtl_lora", "reft")


@pytest.fixture(scope="module")
def config_schema() -> dict[str, Any]:
    return build_schema("config")


@pytest.fixture(scope="module")
def validator(config_schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema)


@pytest.fixture(scope="module")
def saved_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(build_schema("saved-adapter"))


def _branch(schema: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for one variant of the config schema (its $refs resolve in the document)."""
    sub = {**schema, "$ref": f"#/$defs/{name}"}
    return jsonschema.Draft202012Validator(sub)


def _corpus_ok_cases() -> list[dict[str, Any]]:
    cases = json.loads(CORPUS.read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["ok"]]


# -- the files -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_files_are_current(kind: str) -> None:
    path = SCHEMAS / FILENAMES[kind]
    assert path.read_bytes() == schema_text(kind).encode("utf-8"), (
        f"{path} is stale: regenerate with `make schemas` (adapter-dsl schema --output schemas)"
    )


def test_generation_is_deterministic() -> None:
    assert schema_text("config") == schema_text("config")
    assert adapter_dsl.json_schema() == build_schema("config")
    assert adapter_dsl.json_schema("saved-adapter") == build_schema("saved-adapter")


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(adapter_dsl.ConfigError, match="unknown schema kind") as info:
        build_schema("saved_adapter")
    assert info.value.problems[0].suggestion == "did you mean 'saved-adapter'?"


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_valid_draft_2020_12(kind: str) -> None:
    schema = json.loads((SCHEMAS / FILENAMES[kind]).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_IDS[kind]
    jsonschema.Draft202012Validator.check_schema(schema)


# -- documentation for editors -------------------------------------------------------------


def _properties(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (variant, name, prop)
        for variant in (*VARIANTS, "union")
        for name, prop in schema["$defs"][variant]["properties"].items()
    ]


def test_every_field_is_documented(config_schema: dict[str, Any]) -> None:
    for variant, name, prop in _properties(config_schema):
        where = f"{variant}.{name}"
        assert prop.get("description"), where
        assert prop.get("markdownDescription"), where
        if name not in ("$schema", "architecture", "configs", "invertible_adapter"):
            assert prop.get("examples"), where


def test_defaults_match_the_config_classes(config_schema: dict[str, Any]) -> None:
    from adapter_dsl.methods.base import plain
    from adapter_dsl.schema import _variants

    for name, _tag, cls, _title in _variants():
        props = config_schema["$defs"][name]["properties"]
        for field, info in cls.model_fields.items():
            if field == "architecture":
                continue
            if info.is_required():
                assert "default" not in props[field], f"{name}.{field}"
                assert field in config_schema["$defs"][name]["required"]
            else:
                assert props[field]["default"] == plain(info.default), f"{name}.{field}"


def test_enums_carry_value_descriptions(config_schema: dict[str, Any]) -> None:
    lora = config_schema["$defs"]["lora"]["properties"]
    mode = lora["composition_mode"]
    assert mode["enum"] == ["add", "scale"]
    assert len(mode["enumDescriptions"]) == 2
    assert "IA³" in mode["markdownEnumDescriptions"][1]
    assert lora["attn_matrices"]["items"]["enumDescriptions"][0] == "Query projection."
    bn = config_schema["$defs"]["bottleneck"]["properties"]
    assert "identity" in bn["init_weights"]["enumDescriptions"][1]
    # Preset values are listed where presets differ.
    assert "`par_bn`, `scaled_par_bn` → `2`" in bn["reduction_factor"]["markdownDescription"]


# -- variants and their tags ---------------------------------------------------------------


def test_every_variant_but_bottleneck_requires_its_tag(config_schema: dict[str, Any]) -> None:
    defs = config_schema["$defs"]
    for name in (*VARIANTS[1:], "union"):
        assert defs[name]["properties"]["architecture"]["const"] == name
        assert "architecture" in defs[name]["required"]
    bottleneck = defs["bottleneck"]
    assert "architecture" not in bottleneck["required"]
    assert bottleneck["properties"]["architecture"]["enum"] == [None, "bottleneck"]
    assert [r["$ref"] for r in defs["single_method"]["oneOf"]] == [f"#/$defs/{v}" for v in VARIANTS]
    # A member is one method, or a union (which load() flattens).
    assert defs["union"]["properties"]["configs"]["items"]["anyOf"] == [
        {"$ref": "#/$defs/single_method"},
        {"$ref": "#/$defs/union"},
    ]


@pytest.mark.parametrize("identifier", [i for i, p in IDENTIFIERS.items() if not p.deprecated])
def test_each_preset_matches_exactly_one_variant(
    config_schema: dict[str, Any], identifier: str
) -> None:
    data = adapter_dsl.load(identifier).to_dict()
    matching = [v for v in (*VARIANTS, "union") if _branch(config_schema, v).is_valid(data)]
    expected = data.get("architecture") or "bottleneck"
    assert matching == [expected]


def test_bottleneck_branch_is_recognised_without_architecture(
    config_schema: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    seq_bn = adapter_dsl.load("seq_bn").to_dict()
    assert "architecture" not in seq_bn
    assert validator.is_valid(seq_bn)
    for value in (None, "bottleneck"):
        assert validator.is_valid({**seq_bn, "architecture": value})
        assert adapter_dsl.load({**seq_bn, "architecture": value}) == adapter_dsl.load("seq_bn")
    # With another family's tag, bottleneck keys are unknown there: rejected by both.
    assert not validator.is_valid({**seq_bn, "architecture": "lora"})
    with pytest.raises(adapter_dsl.ConfigError):
        adapter_dsl.load({**seq_bn, "architecture": "lora"})
    # A LoRA dict without its tag is read as a bottleneck config: rejected by both.
    lora = adapter_dsl.load("lora").to_dict()
    del lora["architecture"]
    assert not validator.is_valid(lora)
    with pytest.raises(adapter_dsl.ConfigError):
        adapter_dsl.load(lora)


def test_schema_key_is_allowed_on_top_only(validator: jsonschema.Draft202012Validator) -> None:
    data = {"$schema": SCHEMA_IDS["config"], **adapter_dsl.load("lora[r=4]").to_dict()}
    assert validator.is_valid(data)
    assert adapter_dsl.load(data) == adapter_dsl.load("lora[r=4]")
    union = {"$schema": "./adapter-config.schema.json", **adapter_dsl.load("mam").to_dict()}
    assert validator.is_valid(union)
    union["configs"][0]["$schema"] = "x"
    assert not validator.is_valid(union)


# -- agreement with load() -----------------------------------------------------------------


def test_reference_corpus_configs_validate(
    validator: jsonschema.Draft202012Validator,
    saved_validator: jsonschema.Draft202012Validator,
) -> None:
    checked = 0
    for case in _corpus_ok_cases():
        try:
            config = adapter_dsl.load(case["input"])
        except adapter_dsl.ConfigError:
            continue  # stricter than the reference on purpose; covered by the core's tests
        data = config.to_dict()
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, f"{case['id']} ({case['input']!r}): {errors[:3]}"
        envelope = {"config": data, "model_type": "bert", "name": "a", "version": "adapters.1.3.0"}
        assert saved_validator.is_valid(envelope), case["id"]
        checked += 1
    assert checked > 300


def _invalid_cases() -> list[tuple[str, dict[str, Any]]]:
    lora = adapter_dsl.load("lora").to_dict()
    seq_bn = adapter_dsl.load("seq_bn").to_dict()
    prefix = adapter_dsl.load("prefix_tuning").to_dict()
    prompt = adapter_dsl.load("prompt_tuning").to_dict()
    reft = adapter_dsl.load("loreft").to_dict()
    mtl = adapter_dsl.load("mtl_lora").to_dict()
    mam = adapter_dsl.load("mam").to_dict()
    return [
        # unknown keys
        ("lora unknown key", {**lora, "rank": 8}),
        ("bottleneck unknown key", {**seq_bn, "reduction": 2}),
        ("union unknown key", {**mam, "name": "x"}),
        (
            "union member unknown key",
            {**mam, "configs": [{**mam["configs"][0], "foo": 1}, mam["configs"][1]]},
        ),
        ("unknown architecture", {**lora, "architecture": "lora2"}),
        # wrong types
        ("r as string", {**lora, "r": "8"}),
        ("r as float", {**lora, "r": 8.5}),
        ("bool as int", {**lora, "use_dora": 1}),
        ("attn_matrices as string", {**lora, "attn_matrices": "qv"}),
        ("leave_out as int", {**seq_bn, "leave_out": 3}),
        ("reduction_factor as string", {**seq_bn, "reduction_factor": "16"}),
        ("layers as other string", {**reft, "layers": "some"}),
        ("prefix_length null", {**prefix, "prefix_length": None}),
        ("configs not a list", {**mam, "configs": {}}),
        ("missing required key", {k: v for k, v in seq_bn.items() if k != "non_linearity"}),
        # out of range
        ("r negative", {**lora, "r": -3}),
        ("r zero", {**lora, "r": 0}),
        ("alpha zero", {**lora, "alpha": 0}),
        ("dropout one", {**lora, "dropout": 1.0}),
        ("dropout negative", {**seq_bn, "dropout": -0.1}),
        ("reduction_factor zero", {**seq_bn, "reduction_factor": 0}),
        ("reduction_factor mapping without default", {**seq_bn, "reduction_factor": {"1": 8}}),
        (
            "reduction_factor mapping bad key",
            {**seq_bn, "reduction_factor": {"default": 8, "x": 2}},
        ),
        ("negative layer", {**seq_bn, "leave_out": [-1]}),
        ("duplicate layer", {**seq_bn, "leave_out": [1, 1]}),
        ("duplicate matrix", {**lora, "attn_matrices": ["q", "q"]}),
        ("empty matrices", {**lora, "attn_matrices": []}),
        ("negative seed", {**prefix, "init_weights_seed": -1}),
        ("prompt_length zero", {**prompt, "prompt_length": 0}),
        ("empty union", {**mam, "configs": []}),
        # bad enum values
        ("composition_mode", {**lora, "composition_mode": "x"}),
        ("lora init_weights", {**lora, "init_weights": "houlsby"}),
        ("bottleneck init_weights", {**seq_bn, "init_weights": "lora"}),
        ("non_linearity", {**seq_bn, "non_linearity": "relux"}),
        ("scaling word", {**seq_bn, "scaling": "big"}),
        ("residual_before_ln", {**seq_bn, "residual_before_ln": "pre_add"}),
        ("inv_adapter", {**seq_bn, "inv_adapter": "real_nvp", "inv_adapter_reduction_factor": 2}),
        ("attn matrix o", {**lora, "attn_matrices": ["q", "o"]}),
        ("dtype", {**lora, "dtype": "int8"}),
        ("prompt_init", {**prompt, "prompt_init": "zeros"}),
        ("combine", {**prompt, "combine": "suffix"}),
        ("task_specific_matrix_type", {**mtl, "task_specific_matrix_type": "diag"}),
        ("phm_c_init", {**seq_bn, "phm_c_init": "xavier"}),
        # cross-field rules the schema states
        ("ia3 with r 8", {**lora, "composition_mode": "scale"}),
        ("scale with dropout", {**lora, "composition_mode": "scale", "r": 1, "dropout": 0.1}),
        ("inv_adapter without factor", {**seq_bn, "inv_adapter": "nice"}),
        (
            "post_add without original ln",
            {**seq_bn, "residual_before_ln": "post_add", "original_ln_before": False},
        ),
        ("from_string without text", {**prompt, "prompt_init": "from_string"}),
        ("lora placed nowhere", {**lora, "selfattn_lora": False}),
        ("bottleneck placed nowhere", {**seq_bn, "output_adapter": False}),
    ]


@pytest.mark.parametrize(("name", "data"), _invalid_cases(), ids=[c[0] for c in _invalid_cases()])
def test_invalid_configs_fail_schema_and_load(
    validator: jsonschema.Draft202012Validator, name: str, data: dict[str, Any]
) -> None:
    assert not validator.is_valid(data), f"the schema accepts: {name}"
    with pytest.raises(adapter_dsl.ConfigError):
        adapter_dsl.load(data)


def test_saved_adapter_envelope(saved_validator: jsonschema.Draft202012Validator) -> None:
    good = {
        "$schema": SCHEMA_IDS["saved-adapter"],
        "config": adapter_dsl.load("lora[r=16]").to_dict(),
        "hidden_size": 768,
        "model_class": "BertModel",
        "model_name": "bert-base-uncased",
        "model_type": "bert",
        "name": "sentiment",
        "version": "adapters.1.3.0",
    }
    assert saved_validator.is_valid(good)
    assert adapter_dsl.load(good) == adapter_dsl.load("lora[r=16]")
    assert saved_validator.is_valid({**good, "hidden_size": None})
    assert not saved_validator.is_valid({k: v for k, v in good.items() if k != "config"})
    assert not saved_validator.is_valid({**good, "config": {**good["config"], "r": 0}})
    # Other keys are the reference's meta_dict entries (e.g. "task"), kept beside the config.
    assert saved_validator.is_valid({**good, "task": "sst2"})
    assert adapter_dsl.load({**good, "task": "sst2"}) == adapter_dsl.load("lora[r=16]")
    # A bare config is not a saved-adapter file.
    assert not saved_validator.is_valid(good["config"])


# -- the editor engine ---------------------------------------------------------------------


def _editor_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the editor-engine check needs Node.js 18+")
    if not (EDITOR / "node_modules" / "vscode-json-languageservice").is_dir():
        pytest.skip("vscode-json-languageservice is not installed: run `make node-deps`")
    return node


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = _editor_or_skip()
    probes = {
        "schemas": {SCHEMA_IDS[k]: str(SCHEMAS / FILENAMES[k]) for k in KINDS},
        "associations": [
            {"uri": SCHEMA_IDS["config"], "fileMatch": ["*.adapter.json"]},
            {"uri": SCHEMA_IDS["saved-adapter"], "fileMatch": ["adapter_config.json"]},
        ],
        "probes": [
            {
                "name": "keys",
                "uri": "file:///w/a.adapter.json",
                "text": '{"architecture": "lora", |}',
            },
            {
                "name": "values",
                "uri": "file:///w/a.adapter.json",
                "text": '{"architecture": "lora", "composition_mode": |}',
            },
            {
                "name": "architectures",
                "uri": "file:///w/a.adapter.json",
                "text": '{"architecture": |}',
            },
            {
                "name": "bottleneck_keys",
                "uri": "file:///w/a.adapter.json",
                "text": '{"mh_adapter": false, |}',
            },
            {
                "name": "hover",
                "uri": "file:///w/a.adapter.json",
                "text": '{"architecture": "lora", "compo|sition_mode": "add"}',
                "hover": True,
            },
            {
                "name": "wrong_values",
                "uri": "file:///w/a.adapter.json",
                "text": '{"architecture": "lora", "r": -3, "composition_mode": "x", "rank": 2}',
            },
            {
                "name": "good",
                "uri": "file:///w/a.adapter.json",
                "text": json.dumps(adapter_dsl.load("lora[r=16]").to_dict()),
            },
            {
                "name": "schema_key",
                "uri": "file:///w/other.json",
                "text": json.dumps(
                    {"$schema": SCHEMA_IDS["config"], "architecture": "lora", "r": 0}
                ),
            },
            {
                "name": "saved",
                "uri": "file:///w/adapter_config.json",
                "text": json.dumps({"config": {"architecture": "lora", "alpha": -1}, "name": "a"}),
            },
        ],
    }
    spec = tmp_path_factory.mktemp("editor") / "probes.json"
    spec.write_text(json.dumps(probes), encoding="utf-8")
    proc = subprocess.run(
        [node, str(EDITOR / "check_schema.js"), str(spec)],
        cwd=EDITOR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _labels(result: dict[str, Any]) -> list[str]:
    return [c["label"] for c in result["completions"]]


def _messages(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["message"], d["text"]) for d in result["diagnostics"]]


def test_editor_completes_lora_keys(editor: dict[str, Any]) -> None:
    labels = _labels(editor["keys"])
    assert {"r", "alpha", "attn_matrices", "composition_mode", "dropout"} <= set(labels)
    assert "reduction_factor" not in labels  # the bottleneck branch is not offered for a LoRA


def test_editor_completes_enum_values_with_descriptions(editor: dict[str, Any]) -> None:
    completions = {c["label"]: c["documentation"] for c in editor["values"]["completions"]}
    assert set(completions) >= {'"add"', '"scale"'}
    assert "IA³" in completions['"scale"']
    assert set(_labels(editor["architectures"])) >= {
        '"lora"',
        '"union"',
        '"prefix_tuning"',
        '"reft"',
        "null",
    }
    assert {"output_adapter", "reduction_factor", "non_linearity"} <= set(
        _labels(editor["bottleneck_keys"])
    )


def test_editor_reports_wrong_values(editor: dict[str, Any]) -> None:
    messages = _messages(editor["wrong_values"])
    assert ("Value is below the minimum of 1.", "-3") in messages
    assert any(t == '"x"' and '"add", "scale"' in m for m, t in messages), messages
    assert any(t == '"rank"' and "not allowed" in m for m, t in messages), messages
    assert editor["good"]["diagnostics"] == []


def test_editor_follows_schema_key_and_saved_files(editor: dict[str, Any]) -> None:
    assert ("Value is below the minimum of 1.", "0") in _messages(editor["schema_key"])
    assert any(t == "-1" for _, t in _messages(editor["saved"])), _messages(editor["saved"])


def test_editor_hover_shows_markdown_documentation(editor: dict[str, Any]) -> None:
    hover = editor["hover"]["hover"]
    assert "low-rank update" in hover
    assert 'Default: `"add"`' in hover
