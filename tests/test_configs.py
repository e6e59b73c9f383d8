"""Config objects: presets, validation rules and their messages, value semantics, unions."""

from __future__ import annotations

import pytest

import adapter_dsl as ad
from adapter_dsl import ConfigError, dumps, load, parse


def error_of(spec: object, **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(spec, **overrides)
    return info.value


# -- presets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "cls", "checks"),
    [
        ("seq_bn", ad.SeqBnConfig, {"reduction_factor": 16, "original_ln_before": True}),
        ("double_seq_bn", ad.DoubleSeqBnConfig, {"mh_adapter": True, "non_linearity": "swish"}),
        ("par_bn", ad.ParBnConfig, {"is_parallel": True, "scaling": 4.0, "reduction_factor": 2}),
        ("scaled_par_bn", ad.ParBnConfig, {"scaling": "learned"}),
        (
            "seq_bn_inv",
            ad.SeqBnInvConfig,
            {"inv_adapter": "nice", "inv_adapter_reduction_factor": 2},
        ),
        ("double_seq_bn_inv", ad.DoubleSeqBnInvConfig, {"inv_adapter": "nice"}),
        (
            "compacter",
            ad.CompacterConfig,
            {"phm_layer": True, "mh_adapter": True, "reduction_factor": 32},
        ),
        ("compacter++", ad.CompacterPlusPlusConfig, {"phm_layer": True, "mh_adapter": False}),
        ("prefix_tuning", ad.PrefixTuningConfig, {"prefix_length": 30, "bottleneck_size": 512}),
        ("prefix_tuning_flat", ad.PrefixTuningConfig, {"flat": True}),
        ("lora", ad.LoRAConfig, {"r": 8, "alpha": 8, "attn_matrices": ("q", "v")}),
        ("ia3", ad.IA3Config, {"composition_mode": "scale", "intermediate_lora": True}),
        ("prompt_tuning", ad.PromptTuningConfig, {"prompt_length": 10}),
        ("vera", ad.VeraConfig, {"vera_d": 0.1, "vera_b": 0.0}),
        ("dora", ad.DoRAConfig, {"use_dora": True}),
        ("dvora", ad.DvoRAConfig, {"use_dora": True, "vera_d": 0.1}),
        ("mtl_lora", ad.MTLLoRAConfig, {"n_up_projection": 1}),
        ("loreft", ad.LoReftConfig, {"orthogonality": True, "prefix_positions": 3}),
        ("noreft", ad.NoReftConfig, {"orthogonality": False}),
        ("direft", ad.DiReftConfig, {"subtract_projection": False}),
        ("pfeiffer", ad.SeqBnConfig, {}),
        ("houlsby+inv", ad.DoubleSeqBnInvConfig, {}),
    ],
)
def test_presets(identifier: str, cls: type, checks: dict[str, object]) -> None:
    config = load(identifier)
    assert type(config) is cls
    for key, value in checks.items():
        assert getattr(config, key) == value


def test_union_presets() -> None:
    mam = load("mam")
    assert isinstance(mam, ad.MAMConfig)
    assert mam == ad.ConfigUnion(ad.PrefixTuningConfig(bottleneck_size=800), ad.ParBnConfig())
    unipelt = load("unipelt")
    assert [type(c).__name__ for c in unipelt.configs] == [
        "PrefixTuningConfig",
        "SeqBnConfig",
        "LoRAConfig",
    ]
    assert all(c.use_gating for c in unipelt.configs)
    assert unipelt.configs[0].prefix_length == 10
    assert (unipelt.configs[2].r, unipelt.configs[2].alpha) == (8, 2)


def test_seed_example_from_the_documentation() -> None:
    config = parse("prefix_tuning[bottleneck_size=800]|parallel")
    assert config == ad.ConfigUnion(ad.PrefixTuningConfig(bottleneck_size=800), ad.ParBnConfig())


def test_abstract_base_cannot_be_built() -> None:
    with pytest.raises(ConfigError, match="abstract"):
        ad.AdapterConfig()


# -- validation: types, ranges, enums ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("lora[r=-3]", "r", "greater than or equal to 1"),
        ("lora[r=0]", "r", "greater than or equal to 1"),
        ("lora[r=1.5]", "r", "valid integer"),
        ("lora[r=True]", "r", "valid integer"),
        ("lora[r='8']", "r", "valid integer"),
        ("seq_bn[dropout=1.5]", "dropout", "[0, 1)"),
        ("seq_bn[dropout=-0.1]", "dropout", "[0, 1)"),
        ("par_bn[reduction_factor='abc']", "reduction_factor", "str is not a number"),
        ("par_bn[reduction_factor=0]", "reduction_factor", "greater than 0"),
        ("seq_bn[reduction_factor={'1': 8}]", "reduction_factor", "no 'default' entry"),
        ("seq_bn[reduction_factor={'x': 8, 'default': 2}]", "reduction_factor", "layer indices"),
        ("seq_bn[leave_out='x']", "leave_out", "a string is not a list"),
        ("seq_bn[leave_out=[0, 0]]", "leave_out", "listed twice"),
        ("seq_bn[leave_out=[-1]]", "leave_out", "greater than or equal to 0"),
        ("seq_bn[non_linearity=gelux]", "non_linearity", "did you mean 'gelu'"),
        ("seq_bn[init_weights=xavier]", "init_weights", "'bert', 'mam_adapter' or 'houlsby'"),
        ("seq_bn[scaling=foo]", "scaling", "scaling"),
        ("seq_bn[residual_before_ln=1]", "residual_before_ln", "True, False or 'post_add'"),
        ("seq_bn[phm_c_init=foo]", "phm_c_init", "'normal' or 'uniform'"),
        ("lora[attn_matrices='qkv']", "attn_matrices", "a string is not a list"),
        ("lora[attn_matrices=['o']]", "attn_matrices", "'q', 'k' or 'v'"),
        ("lora[attn_matrices=[]]", "attn_matrices", "at least 1 item"),
        ("lora[composition_mode=scal]", "composition_mode", "did you mean 'scale'"),
        ("lora[dtype=float99]", "dtype", "torch dtype"),
        ("prefix_tuning[prefix_length=0]", "prefix_length", "greater than or equal to 1"),
        ("prompt_tuning[combine=suffix]", "combine", "'prefix' or 'prefix_after_bos'"),
        ("loreft[layers=first]", "layers", "'all' or a list"),
        ("seq_bn[mh_adapter=None]", "mh_adapter", "valid boolean"),
        ("seq_bn[mh_adapter=1]", "mh_adapter", "valid boolean"),
    ],
)
def test_invalid_values_are_located(text: str, key: str, needle: str) -> None:
    error = error_of(text)
    (problem,) = error.problems
    assert problem.location.path == (key,)
    assert problem.location.span is not None
    assert needle in str(error)


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("ia3[r=4]", "r", "r must be 1"),
        ("lora[composition_mode=scale]", "r", "r must be 1"),
        ("ia3[dropout=0.1]", "dropout", "does not support dropout"),
        ("ia3[init_weights=vera]", "init_weights", "cannot initialise an IA³"),
        ("dora[composition_mode=scale, r=1]", "use_dora", "needs composition_mode='add'"),
        ("lora[vera_d=0.5]", "vera_b", "both vera_d and vera_b"),
        ("prompt_tuning[prompt_init=from_string]", "prompt_init_text", "needs a prompt_init_text"),
        ("seq_bn[inv_adapter=nice]", "inv_adapter_reduction_factor", "needs a numeric"),
        (
            "seq_bn[original_ln_before=False, residual_before_ln=post_add]",
            "residual_before_ln",
            "original_ln_before=True",
        ),
        ("compacter[init_weights=houlsby]", "init_weights", "cannot initialise PHM layers"),
        ("seq_bn[output_adapter=False]", "output_adapter", "placed nowhere"),
        ("lora[selfattn_lora=False]", "selfattn_lora", "placed nowhere"),
        ("noreft[prefix_positions=0]", "prefix_positions", "touches no position"),
    ],
)
def test_cross_field_rules(text: str, key: str, needle: str) -> None:
    error = error_of(text)
    assert any(p.location.path == (key,) for p in error.problems)
    assert needle in str(error)


def test_all_problems_are_reported_at_once() -> None:
    error = error_of("lora[r=-1, alpha=0, dropout=2, foo=1]")
    assert sorted(p.location.path[0] for p in error.problems) == ["alpha", "dropout", "foo", "r"]
    assert "(4 problems)" in str(error)


def test_problems_across_union_members_are_all_reported() -> None:
    error = error_of("lora[r=0]|seq_bn[dropout=3]|nope")
    assert len(error.problems) == 3


def test_unknown_key_suggests_the_closest_field() -> None:
    error = error_of("lora[alhpa=16]")
    (problem,) = error.problems
    assert problem.code == "unknown_key"
    assert problem.suggestion == "did you mean 'alpha'?"
    assert "alpha" in (problem.expected or "")


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("LoRA", "'lora'"), ("lorra", "'lora'"), ("SEQ_BN", "'seq_bn'"), ("compacter+", "'compacter")],
)
def test_unknown_identifier_suggestions(text: str, suggestion: str) -> None:
    (problem,) = error_of(text).problems
    assert problem.code == "unknown_identifier"
    assert problem.suggestion is not None
    assert problem.suggestion.startswith("did you mean " + suggestion)


def test_duplicate_keys_are_an_error() -> None:
    (problem,) = error_of("lora[r=4, r=8]").problems
    assert problem.code == "duplicate_key"
    assert problem.location.span == (10, 11)


def test_int_keys_in_reduction_factor_mean_layer_indices() -> None:
    config = parse("seq_bn[reduction_factor={'default': 16, 1: 8}]")
    assert dict(config.reduction_factor) == {"default": 16, "1": 8}


def test_activation_names_are_normalised() -> None:
    assert parse("seq_bn[non_linearity=ReLU]") == parse("seq_bn")


def test_scaling_int_is_a_number() -> None:
    assert parse("par_bn[scaling=2]").scaling == 2.0


# -- value semantics ---------------------------------------------------------------------------


def test_configs_are_immutable_and_hashable() -> None:
    config = load("lora")
    with pytest.raises(ConfigError, match=r"immutable: cannot set 'r'.*cfg.replace\(r=...\)"):
        config.r = 4  # type: ignore[misc]
    with pytest.raises(ConfigError, match="immutable"):
        config.foo = {}  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="immutable"):
        del config.r
    mapping = parse("seq_bn[reduction_factor={'default': 16}]").reduction_factor
    with pytest.raises(TypeError):
        mapping["default"] = 2  # type: ignore[index]
    assert len({load("lora"), parse("lora[r=8]"), load("ia3")}) == 2


def test_equality_is_by_value() -> None:
    ia3_dict = load("ia3").to_dict()
    assert load(ia3_dict) == ad.IA3Config()
    assert type(load(ia3_dict)) is ad.IA3Config
    assert dumps(load(ia3_dict)) == "ia3"
    assert ad.LoRAConfig(**ia3_dict) == ad.IA3Config()
    assert load("lora") != load("lora[r=4]")
    assert load("lora") != "lora"


def test_replace_validates() -> None:
    config = load("lora").replace(r=16, alpha=32)
    assert (config.r, config.alpha) == (16, 32)
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        load("lora").replace(alhpa=3)
    with pytest.raises(ConfigError, match="greater than or equal to 1"):
        load("lora").replace(r=0)


def test_union_operator_and_flattening() -> None:
    union = load("lora") | load("seq_bn")
    assert isinstance(union, ad.ConfigUnion)
    assert dumps(union) == "lora|seq_bn"
    three = load("mam") | load("lora")
    assert len(three.configs) == 3
    with pytest.raises(ConfigError, match="same adapter architecture"):
        load("lora") | load("ia3")


def test_union_keys_apply_to_members_that_have_them() -> None:
    assert parse("unipelt[r=4]") == parse("unipelt[lora.r=4]")
    assert parse("unipelt[r=4]").configs[2].r == 4
    both = parse("mam[dropout=0.1]")
    assert all(c.dropout == 0.1 for c in both.configs)
    only = parse("mam[prefix_tuning.bottleneck_size=512]")
    assert only.configs[0].bottleneck_size == 512
    assert parse("unipelt[2.r=4]") == parse("unipelt[lora.r=4]")


def test_union_key_errors() -> None:
    error = error_of("unipelt[foo=3]")
    assert "no member of the union has a key 'foo'" in str(error)
    error = error_of("unipelt[lorra.r=3]")
    assert "did you mean 'lora'" in str(error)
    error = error_of("mam[adapter.r=3]")
    assert "unknown key 'r'" in str(error)
    error = error_of("lora[lora.r=3]")
    assert "single method" in str(error)


def test_union_replace() -> None:
    union = load("unipelt").replace(**{"lora.r": 2, "prefix_length": 5})
    assert union.configs[2].r == 2
    assert union.configs[0].prefix_length == 5
    assert isinstance(union, ad.UniPELTConfig)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("prefix_tuning|par_bn", True),
        ("seq_bn|double_seq_bn[output_adapter=False]", True),
        (
            "double_seq_bn[mh_adapter=False]|double_seq_bn[output_adapter=False, reduction_factor=2]",
            True,
        ),
        ("seq_bn[leave_out=[0]]|seq_bn[leave_out=[1]]", True),
        ("seq_bn|seq_bn", False),
        ("seq_bn|double_seq_bn", False),
        ("lora|ia3", False),
        ("lora|vera", False),
        ("lora|mtl_lora", False),
        ("loreft|noreft", False),
        ("prefix_tuning|prefix_tuning_flat", False),
    ],
)
def test_union_rules(text: str, valid: bool) -> None:
    if valid:
        parse(text)
    else:
        error = error_of(text)
        assert "members 0 and 1" in str(error)


def test_mam_constructor_checks_member_types() -> None:
    with pytest.raises(ConfigError, match="MAMConfig combines prefix_tuning"):
        ad.MAMConfig(ad.LoRAConfig(), ad.ParBnConfig())  # type: ignore[arg-type]


def test_load_overrides() -> None:
    assert load("lora", r=4).r == 4
    assert load("unipelt", r=4).configs[2].r == 4
    with pytest.raises(ConfigError):
        load("lora", r=-1)
    # None is a value like any other (the reference silently ignores None overrides).
    assert load("lora", init_weights_seed=None).init_weights_seed is None


def test_load_rejects_other_types() -> None:
    with pytest.raises(ConfigError, match="cannot load a config from this value"):
        load(42)


@pytest.mark.parametrize(
    "text",
    ["lora[r=4]", "unipelt[r=3]", "seq_bn[reduction_factor={'default': 8, '1': 4}]", "direft"],
)
def test_configs_pickle_and_copy(text: str) -> None:
    import copy
    import pickle

    config = load(text)
    for clone in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config), copy.copy(config)):
        assert clone == config
        assert type(clone) is type(config)
        assert hash(clone) == hash(config)


def test_config_errors_pickle() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(error_of("lora[r=0]")))
    assert isinstance(error, ConfigError)
    assert error.problems[0].location.path == ("r",)


def test_equal_configs_hash_equally() -> None:
    assert parse("seq_bn[reduction_factor=16.0]") == parse("seq_bn")
    assert len({parse("seq_bn[reduction_factor=16.0]"), parse("seq_bn")}) == 1
    assert len({parse("lora[alpha=8.0]"), parse("lora")}) == 1


@pytest.mark.parametrize(
    "text", ["seq_bn[scaling=nan]", "seq_bn[scaling='1e3']", "seq_bn[scaling=' 2 ']"]
)
def test_scaling_strings_are_only_learned_or_channel(text: str) -> None:
    (problem,) = error_of(text).problems
    assert "neither 'learned' nor 'channel'" in problem.message


def test_huge_numbers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="too large"):
        ad.SeqBnConfig(scaling=10**400)


def test_vera_scalings_are_floats() -> None:
    # The reference picks VeRA only for float vera_d/vera_b: an int in JSON would mean LoRA there.
    d = parse("vera[vera_d=1, vera_b=0]").to_dict()
    assert (type(d["vera_d"]), type(d["vera_b"])) == (float, float)


def test_union_constructors_check_their_members() -> None:
    with pytest.raises(ConfigError, match="at least two configs"):
        ad.ConfigUnion(ad.LoRAConfig())
    with pytest.raises(ConfigError, match="expected a list of configs"):
        ad.ConfigUnion(configs=5)
    with pytest.raises(ConfigError, match="UniPELTConfig combines"):
        ad.UniPELTConfig(lora="lora")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="MAMConfig combines"):
        ad.MAMConfig(configs=[ad.LoRAConfig(), ad.SeqBnConfig()])


@pytest.mark.parametrize(
    "text", ["unipelt[lora.r=4, 2.r=5]", "mam[adapter.dropout=0.2, dropout=0.1]"]
)
def test_a_member_field_set_twice_is_an_error(text: str) -> None:
    assert error_of(text).problems[0].code == "duplicate_key"


def test_mappings_print_in_a_fixed_order() -> None:
    a = parse("seq_bn[reduction_factor={'default': 16, '10': 8, '2': 4}]")
    b = parse("seq_bn[reduction_factor={'2': 4, 'default': 16, '10': 8}]")
    assert dumps(a) == dumps(b) == "seq_bn[reduction_factor={'2': 4, '10': 8, 'default': 16}]"


def test_multi_line_strings_report_line_and_column() -> None:
    assert "line 3, column 9 at /alpha" in str(error_of("lora[\n  r=16,\n  alpha=0,\n]"))


def test_pydantic_entry_points_validate() -> None:
    with pytest.raises(ConfigError):
        ad.LoRAConfig().model_copy(update={"r": -1})
    with pytest.raises(ConfigError):
        ad.LoRAConfig.model_validate({"r": "x"})
    assert ad.LoRAConfig.model_validate({"r": 4}) == parse("lora[r=4]")


def test_mapping_style_access() -> None:
    assert load("lora")["r"] == 8
    assert load("lora").get("missing", 5) == 5
