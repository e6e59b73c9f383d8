"""Integrations import their library only when used: the config layer stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = (
    "yaml",
    "tomli_w",
    "omegaconf",
    "hydra",
    "optuna",
    "click",
    "typer",
    "pydantic_settings",
    "huggingface_hub",
    "torch",
    "transformers",
)


def test_using_the_config_layer_imports_no_optional_library() -> None:
    code = f"""
import sys, adapter_dsl, adapter_dsl.integrations
from adapter_dsl.integrations import AdapterArguments, ConfigString, config_type
from pydantic import BaseModel
class Job(BaseModel):
    adapter: adapter_dsl.AdapterSpec
Job(adapter="lora[r=4]")
Job.model_json_schema()
adapter_dsl.load("lora[r=8]")
adapter_dsl.load({{"architecture": "lora"}})
adapter_dsl.sweep("lora[r=choice(4, 8)]")
config_type("seq_bn")
AdapterArguments(adapter_config="lora")
print([m for m in {OPTIONAL!r} if m in sys.modules])
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().replace("'", '"')) == []
