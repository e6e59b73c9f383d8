"""What the backend handlers rely on the configs to guarantee (so they do not re-check it):
every value below is refused when the config is built, before any handler sees it."""

from __future__ import annotations

import pytest

from adapter_dsl import ConfigError, load

REFUSED = [
    # BottleneckHandler
    "seq_bn[init_weights='xavier']",
    "compacter[init_weights='mam_adapter']",
    "seq_bn[scaling='sometimes']",
    "seq_bn[residual_before_ln='pre_add']",
    "seq_bn[residual_before_ln='post_add', original_ln_before=False]",
    "par_bn[residual_before_ln='post_add', original_ln_before=False]",
    "seq_bn[inv_adapter='nice', inv_adapter_reduction_factor=None]",
    "seq_bn_inv[inv_adapter_reduction_factor=0]",
    "seq_bn_inv[inv_adapter_reduction_factor=True]",
    "seq_bn_inv[inv_adapter_reduction_factor='2']",
    # LoRAHandler
    "lora[r=0]",
    "ia3[r=2]",
    "ia3[dropout=0.1]",
    "ia3[use_dora=True]",
    "lora[composition_mode='mul']",
    "lora[dtype='float8']",
]


@pytest.mark.parametrize("text", REFUSED)
def test_the_config_refuses_what_the_backend_no_longer_checks(text: str) -> None:
    with pytest.raises(ConfigError):
        load(text)


def test_every_dtype_a_config_accepts_is_a_torch_dtype() -> None:
    torch = pytest.importorskip("torch")
    from adapter_dsl.fieldtypes import DTYPES

    assert all(isinstance(getattr(torch, name), torch.dtype) for name in DTYPES)
