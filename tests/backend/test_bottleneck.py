"""Bottleneck adapters on every supported architecture: structure, math, counts, lifecycle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl import ConfigUnion, load  # noqa: E402
from adapter_dsl.backend import (  # noqa: E402
    add_adapter,
    delete_adapter,
    set_active,
    train_adapter,
)
from adapter_dsl.backend.state import peek_state  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402
from tests.backend.conftest import make_model, run  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reference" / "param_counts.json"
REFERENCE: dict[str, Any] = json.loads(FIXTURE.read_text())["results"] if FIXTURE.is_file() else {}

# (identifier, overrides, fixture key)
IDENTIFIERS = [
    ("seq_bn", {}, "seq_bn"),
    ("double_seq_bn", {}, "double_seq_bn"),
    ("par_bn", {}, "par_bn"),
    ("scaled_par_bn", {}, "scaled_par_bn"),
    ("seq_bn_inv", {}, "seq_bn_inv"),
    ("double_seq_bn_inv", {}, "double_seq_bn_inv"),
    ("compacter", {"reduction_factor": 8}, "compacter[reduction_factor=8]"),
    ("compacter++", {"reduction_factor": 8}, "compacter++[reduction_factor=8]"),
]
# Reference §5.1 (tiny BERT and GPT-2 have identical counts for every bottleneck preset).
SECTION_5_1 = {
    "seq_bn": 324,
    "double_seq_bn": 648,
    "par_bn": 2144,
    "scaled_par_bn": 2146,
    "seq_bn_inv": 884,
    "double_seq_bn_inv": 1208,
    "compacter[reduction_factor=8]": 496,
    "compacter++[reduction_factor=8]": 280,
}
KINDS = ["bert", "roberta", "gpt2", "bart", "llama"]


def _signature(model: Any) -> tuple[Any, ...]:
    """Everything delete_adapter must restore: state-dict keys, hooks, attributes of every module."""
    modules = tuple(
        (
            name,
            type(m).__name__,
            tuple(m._modules),
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
        )
        for name, m in model.named_modules()
    )
    return (*modules, tuple(model.state_dict()))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("ident", "overrides", "key"), IDENTIFIERS, ids=[i[2] for i in IDENTIFIERS]
)
def test_identifier_builds_trains_and_counts(
    kind: str, ident: str, overrides: dict[str, Any], key: str
) -> None:
    model = make_model(kind)
    before = run(model, kind)
    add_adapter(model, "a", load(ident, **overrides))
    train_adapter(model, "a")
    model.eval()
    out = run(model, kind)
    assert out.shape == before.shape
    out.square().mean().backward()

    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "the adapter has no trainable parameters"
    # Gradients reach adapter parameters, and nothing else has one.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values())
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)

    count = sum(p.numel() for p in trainable.values())
    ref = REFERENCE.get(kind, {}).get(key)
    if ref is not None:
        assert count == ref["trainable"]
        # Our keys are the reference's, plus the shared tensors it forgets to save.
        ours = {
            k: list(v.shape)
            for k, v in model.state_dict().items()
            if ".a." in k or k.startswith("shared_parameters.a.")
        }
        missing = {k: v for k, v in ref["saved_keys"].items() if ours.get(k) != v}
        assert not missing
        extra = set(ours) - set(ref["saved_keys"])
        assert all("shared_parameters.a." in k for k in extra)
    elif kind in ("bert", "gpt2"):
        assert count == SECTION_5_1[key]


@pytest.mark.parametrize("kind", KINDS)
def test_delete_restores_modules_hooks_and_outputs(kind: str) -> None:
    model = make_model(kind)
    sig, before = _signature(model), run(model, kind)
    add_adapter(model, "a", load("double_seq_bn_inv"), set_active=True)
    add_adapter(model, "b", load("compacter", reduction_factor=8))
    add_adapter(model, "c", load("seq_bn", reduction_factor=4))
    set_active(model, ["a", "b", "c"])
    assert not torch.allclose(run(model, kind), before)
    delete_adapter(model, "b")
    delete_adapter(model, "c")
    delete_adapter(model, "a")
    assert _signature(model) == sig
    assert torch.equal(run(model, kind), before)
    assert peek_state(model) is None


@pytest.mark.parametrize("kind", KINDS)
def test_mam_init_and_inactive_adapters_leave_outputs_unchanged(kind: str) -> None:
    model = make_model(kind)
    before = run(model, kind)
    add_adapter(model, "par", load("par_bn"), set_active=True)
    assert torch.equal(run(model, kind), before)  # zero up-projection: identity at init
    add_adapter(model, "seq", load("seq_bn"))
    assert torch.equal(run(model, kind), before)  # added but inactive
    set_active(model, "seq")
    assert not torch.allclose(run(model, kind), before)


# -- the §3.1 formula, written out independently of the hook machinery ------------------------


def _core(ad: Any, a: Any, r: Any) -> Any:
    up = ad.adapter_up(ad.adapter_down(a)) * ad.scaling
    if ad.gate is not None:
        up = up * torch.sigmoid(ad.gate(a)).mean(dim=1, keepdim=True)
    if ad.is_parallel:
        return up if ad.adapter_norm_after is None else ad.adapter_norm_after(up)
    if ad.adapter_residual_before_ln:
        up = up + r
    if ad.adapter_norm_after is not None:
        up = ad.adapter_norm_after(up)
    return up if ad.adapter_residual_before_ln else up + r


def reference_bottleneck(ad: Any, h: Any, x: Any, ln: Any) -> Any:
    if ad.is_parallel:
        t = _core(ad, x, x) + h
    else:
        r = h if ad.residual_before_ln is True else None
        if ad.original_ln_before:
            s = h + x
            if ad.residual_before_ln == "post_add":
                r = s
            a = ln(s) if ln is not None else s
        else:
            a = h
        if not ad.residual_before_ln:
            r = a
        t = _core(ad, a, r)
    if not ad.original_ln_after:
        return t
    return ln(t + x) if ln is not None else t + x


VARIANTS = [
    ("seq_bn", {}),
    ("double_seq_bn", {}),
    ("par_bn", {"init_weights": "bert"}),
    ("scaled_par_bn", {"init_weights": "bert", "use_gating": True, "ln_after": True}),
    ("seq_bn", {"residual_before_ln": False, "ln_before": True, "ln_after": True}),
    ("seq_bn", {"residual_before_ln": "post_add", "use_gating": True}),
    ("seq_bn", {"adapter_residual_before_ln": True, "ln_after": True, "scaling": "channel"}),
    ("double_seq_bn", {"original_ln_after": False, "init_weights": "houlsby"}),
    (
        "seq_bn",
        {"original_ln_before": False, "residual_before_ln": False, "non_linearity": "leakyrelu"},
    ),
]


def _randomise(module: Any) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)


@pytest.mark.parametrize(("ident", "overrides"), VARIANTS)
def test_bert_output_site_matches_reference_formula(ident: str, overrides: dict[str, Any]) -> None:
    model = make_model("bert")
    add_adapter(model, "a", load(ident, **overrides), set_active=True)
    host = model.encoder.layer[0].output
    ad = host.adapters["a"]
    _randomise(ad)
    inter, x = torch.randn(2, 5, 37), torch.randn(2, 5, 32)
    expected = reference_bottleneck(ad, host.dense(inter), x, host.LayerNorm)
    assert torch.allclose(host(inter, x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("ident", "overrides"), [v for v in VARIANTS if v[1].get("residual_before_ln") != "post_add"]
)
def test_gpt2_block_matches_reference_formula(ident: str, overrides: dict[str, Any]) -> None:
    model = make_model("gpt2")
    add_adapter(model, "a", load(ident, **overrides), set_active=True)
    block = model.h[0]
    _randomise(block.output_adapters)
    if hasattr(block, "attention_adapters"):
        _randomise(block.attention_adapters)
    x = torch.randn(2, 5, 32)
    got = block(x)
    set_active(model, None)  # recompute sublayers without adapters
    h1 = block.attn(block.ln_1(x))[0]
    if hasattr(block, "attention_adapters"):
        mid = reference_bottleneck(block.attention_adapters.adapters["a"], h1, x, None)
    else:
        mid = h1 + x
    h2 = block.mlp(block.ln_2(mid))
    expected = reference_bottleneck(block.output_adapters.adapters["a"], h2, mid, None)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("ident", "overrides"), VARIANTS)
def test_bart_layer_matches_reference_formula(ident: str, overrides: dict[str, Any]) -> None:
    model = make_model("bart")
    add_adapter(model, "a", load(ident, **overrides), set_active=True)
    layer = model.encoder.layers[0]
    _randomise(layer.output_adapters)
    mh = getattr(layer, "attention_adapters", None)
    if mh is not None:
        _randomise(mh)
    x = torch.randn(2, 5, 32)
    got = layer(x, attention_mask=None)
    set_active(model, None)
    h1 = layer.self_attn(x, attention_mask=None)[0]
    if mh is not None:
        mid = reference_bottleneck(mh.adapters["a"], h1, x, layer.self_attn_layer_norm)
    else:
        mid = layer.self_attn_layer_norm(h1 + x)
    h2 = layer.fc2(layer.activation_fn(layer.fc1(mid)))
    expected = reference_bottleneck(
        layer.output_adapters.adapters["a"], h2, mid, layer.final_layer_norm
    )
    # H is recovered as (H + X) - X here, hence a tolerance above float32 epsilon.
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_stacked_adapters_chain_through_one_site() -> None:
    model = make_model("bert")
    add_adapter(model, "a", load("seq_bn"))
    add_adapter(model, "b", load("seq_bn", reduction_factor=8))
    set_active(model, ["a", "b"])
    host = model.encoder.layer[1].output
    a, b = host.adapters["a"], host.adapters["b"]
    _randomise(a)
    _randomise(b)
    inter, x = torch.randn(2, 3, 37), torch.randn(2, 3, 32)
    h = host.dense(inter)
    # The reference's Stack runs each adapter's pre step on the previous output: for seq_bn,
    # a gets LN(H + X) with residual H, b gets LN(O_a + X) with residual O_a; post of the last.
    o_a = _core(a, host.LayerNorm(h + x), h)
    o_b = _core(b, host.LayerNorm(o_a + x), o_a)
    assert torch.allclose(host(inter, x), host.LayerNorm(o_b + x), atol=1e-6)


def test_bart_cross_adapter_leave_out_and_per_layer_reduction() -> None:
    model = make_model("bart")
    add_adapter(model, "x", load("double_seq_bn", cross_adapter=True))
    decoder = model.decoder.layers
    assert "x" in decoder[0].cross_attention_adapters.adapters
    assert not hasattr(model.encoder.layers[0], "cross_attention_adapters")
    n = sum(p.numel() for p in peek_state(model).adapters["x"].parameters())
    assert n == REFERENCE.get("bart", {}).get("double_seq_bn[cross_adapter=True]", {}).get(
        "trainable", 1620
    )

    add_adapter(
        model, "y", load("seq_bn", leave_out=[0, 3], reduction_factor={"default": 16, "2": 4})
    )
    assert "y" not in model.encoder.layers[0].output_adapters.adapters
    assert "y" not in decoder[1].output_adapters.adapters
    assert model.encoder.layers[1].output_adapters.adapters["y"].adapter_up.in_features == 2
    # Global index 2 is the first decoder layer (the decoder is offset by the encoder's layers).
    assert decoder[0].output_adapters.adapters["y"].adapter_up.in_features == 8


def test_init_weights_seed_gives_identical_layers_and_keeps_global_rng() -> None:
    model = make_model("gpt2")
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    add_adapter(model, "a", load("double_seq_bn", init_weights_seed=7))
    assert torch.equal(torch.rand(1), expected_next)
    w = [
        m.adapter_down[0].weight
        for site in ("attention_adapters", "output_adapters")
        for m in (getattr(b, site).adapters["a"] for b in model.h)
    ]
    assert all(torch.equal(w[0], x) for x in w[1:])


def test_learned_and_channel_scaling_and_prelu_parameter_counts() -> None:
    model = make_model("bert")
    add_adapter(model, "c", load("seq_bn", scaling="channel", non_linearity="prelu"))
    count = sum(p.numel() for p in peek_state(model).adapters["c"].parameters())
    assert count == 324 + 2 * 32 + 2  # channel scaling (h) and one PReLU weight per module


def _untouched_after(model: Any, kind: str, build: Any) -> ConfigError:
    sig, out = _signature(model), run(model, kind)
    with pytest.raises(ConfigError) as info:
        build()
    assert _signature(model) == sig
    assert torch.equal(run(model, kind), out)
    return info.value


def test_default_compacter_rejected_before_touching_model() -> None:
    model = make_model("bert")
    err = _untouched_after(model, "bert", lambda: add_adapter(model, "c", load("compacter")))
    assert "phm_dim" in str(err)


def test_glow_and_post_add_on_pre_ln_models_are_rejected() -> None:
    model = make_model("gpt2")
    err = _untouched_after(
        model, "gpt2", lambda: add_adapter(model, "g", load("seq_bn_inv", inv_adapter="glow"))
    )
    assert "glow" in str(err).lower()
    err = _untouched_after(
        model,
        "gpt2",
        lambda: add_adapter(model, "p", load("seq_bn", residual_before_ln="post_add")),
    )
    assert "gpt2" in str(err)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ('compacter[reduction_factor=8, init_weights="mam_adapter"]', "init_weights"),
        ('compacter++[init_weights="houlsby"]', "init_weights"),
        ('seq_bn[residual_before_ln="post_add", original_ln_before=False]', "residual_before_ln"),
        ("seq_bn[output_adapter=False]", "output_adapter"),
    ],
)
def test_configs_the_reference_crashes_on_are_rejected_by_the_config_layer(
    spec: str, field: str
) -> None:
    model = make_model("bert")
    err = _untouched_after(model, "bert", lambda: add_adapter(model, "c", spec))
    assert err.problems[0].location.path == (field,)
    assert peek_state(model) is None


@pytest.mark.parametrize(
    ("cls", "values", "needle"),
    [
        ("CompacterConfig", {"reduction_factor": 8, "init_weights": "mam_adapter"}, "PHM"),
        (
            "SeqBnConfig",
            {"residual_before_ln": "post_add", "original_ln_before": False},
            "post_add",
        ),
    ],
)
def test_backend_checks_unvalidated_config_objects_too(
    cls: str, values: dict[str, Any], needle: str
) -> None:
    import adapter_dsl

    # model_construct skips validation: the backend must still refuse before building anything.
    config = getattr(adapter_dsl, cls).model_construct(**values)
    model = make_model("llama")
    err = _untouched_after(model, "llama", lambda: add_adapter(model, "c", config))
    assert needle in str(err)


def test_union_members_conflicting_in_a_layer_are_rejected() -> None:
    model = make_model("bert")
    # The config layer accepts any two bottleneck members with a leave_out (as the reference
    # does); only the backend knows that both land on layer 1.
    union = load("seq_bn[leave_out=[0]]|seq_bn")
    assert isinstance(union, ConfigUnion)
    err = _untouched_after(model, "bert", lambda: add_adapter(model, "u", union))
    assert "layer 1" in str(err)
    ok = ConfigUnion(load("seq_bn", leave_out=[0]), load("seq_bn", leave_out=[1]))
    add_adapter(model, "u", ok)
    assert {"u"} <= set(model.encoder.layer[0].output.adapters) & set(
        model.encoder.layer[1].output.adapters
    )
    inv = ConfigUnion(load("seq_bn_inv", leave_out=[0]), load("seq_bn_inv", leave_out=[1]))
    err = _untouched_after(model, "bert", lambda: add_adapter(model, "v", inv))
    assert "invertible" in str(err)


def test_training_mode_and_dropout_follow_the_model() -> None:
    model = make_model("bert")
    add_adapter(model, "d", load("seq_bn", dropout=0.5))
    train_adapter(model, "d")
    assert model.encoder.layer[0].output.adapters["d"].training
    model.eval()
    assert not model.encoder.layer[0].output.adapters["d"].training


@pytest.mark.parametrize(
    ("spec", "kinds"),
    [
        ("vera|compacter[reduction_factor=4]", "VeraConfig, CompacterConfig"),
        ("compacter[reduction_factor=4]|vera", "CompacterConfig, VeraConfig"),
        ("vera[leave_out=[0]]|vera[leave_out=[1]]", "VeraConfig, VeraConfig"),
        (
            "compacter[reduction_factor=4, leave_out=[0]]|compacter[reduction_factor=4, "
            "leave_out=[1]]",
            "CompacterConfig, CompacterConfig",
        ),
    ],
)
def test_two_members_with_shared_parameters_are_a_located_conflict(spec: str, kinds: str) -> None:
    # VeRA and Compacter keep their shared parameters under shared_parameters.<name>; the
    # reference overwrites one member's with the other's (and vera|compacter then fails in
    # the forward pass).
    model = make_model("bert")
    err = _untouched_after(model, "bert", lambda: add_adapter(model, "a", spec))
    problem = err.problems[0]
    assert (problem.code, problem.location.path, problem.found) == (
        "conflict",
        ("configs", 1),
        kinds,
    )
    assert "union members 0 and 1 both keep shared parameters under shared_parameters" in str(err)
    assert not hasattr(model, "shared_parameters")


def test_vera_and_compacter_side_by_side_as_two_adapters() -> None:
    model = make_model("bert")
    add_adapter(model, "v", "vera")
    add_adapter(model, "c", "compacter[reduction_factor=4]")
    assert set(model.shared_parameters) == {"v", "c"}
    delete_adapter(model, "v")
    delete_adapter(model, "c")
    assert not hasattr(model, "shared_parameters")
