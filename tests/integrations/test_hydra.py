"""OmegaConf containers and the example Hydra app (examples/hydra_app) with its adapter group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapter_dsl import ConfigError, LoRAConfig, SeqBnConfig, load

omegaconf = pytest.importorskip("omegaconf")
hydra = pytest.importorskip("hydra")

APP = Path(__file__).resolve().parents[2] / "examples" / "hydra_app"


def test_load_accepts_containers_with_interpolations_resolved() -> None:
    cfg = omegaconf.OmegaConf.create(
        {"base_r": 4, "adapter": {"architecture": "lora", "r": "${base_r}", "attn_matrices": ["q"]}}
    )
    assert load(cfg.adapter) == LoRAConfig(r=4, attn_matrices=["q"])
    assert load(omegaconf.OmegaConf.create({"adapter": "lora[r=2]"}).adapter) == LoRAConfig(r=2)


def test_a_broken_interpolation_is_a_located_config_error() -> None:
    cfg = omegaconf.OmegaConf.create({"adapter": {"architecture": "lora", "r": "${nowhere}"}})
    with pytest.raises(ConfigError) as info:
        load(cfg.adapter)
    (problem,) = info.value.problems
    assert problem.code == "interpolation" and problem.location.pointer == "/r"
    assert "nowhere" in problem.message


def test_compose_the_adapter_group_with_overrides() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(APP / "conf"), version_base=None):
        default = compose("config")
        assert load(default.adapter) == LoRAConfig(r=8, alpha=8)
        cfg = compose("config", overrides=["adapter.r=16"])
        assert load(cfg.adapter) == LoRAConfig(r=16, alpha=16)  # alpha: ${.r}
        assert load(compose("config", overrides=["adapter=seq_bn"]).adapter) == SeqBnConfig()
        bad = compose("config", overrides=["adapter.r=0"])
        with pytest.raises(ConfigError, match="/r: invalid value for 'r'"):
            load(bad.adapter)


def test_the_app_from_the_command_line(tmp_path: Path) -> None:
    run_dir = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    ok = subprocess.run(
        [sys.executable, str(APP / "train.py"), "adapter.r=16", *run_dir],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "model=bert-base-uncased adapter=lora[r=16, alpha=16]"
    bad = subprocess.run(
        [sys.executable, str(APP / "train.py"), "adapter.r=0", *run_dir],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    assert "at /r: invalid value for 'r'" in bad.stderr
