"""Benchmark worker for PEFT (runs in .venv), for the methods PEFT has.

The PEFT configs are the equivalents of the reference's defaults on BERT (the trainable
parameter counts match; every result reports them): LoRA r=8, alpha=8 on query and value;
prefix tuning with 30 virtual tokens through a 512-wide MLP; IA3 scaling the outputs of key,
value and the intermediate dense layer; prompt tuning with 10 virtual tokens.
See bench_common.py for the job protocol.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench_common import Framework, main


def _config(method: str) -> Any:
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    task = TaskType.FEATURE_EXTRACTION
    if method == "lora":
        return LoraConfig(r=8, lora_alpha=8, target_modules=["query", "value"], task_type=task)
    if method == "prefix_tuning":
        return PrefixTuningConfig(
            num_virtual_tokens=30, prefix_projection=True, encoder_hidden_size=512, task_type=task
        )
    if method == "ia3":
        return IA3Config(
            target_modules=["key", "value", "intermediate.dense"],
            feedforward_modules=[],
            task_type=task,
        )
    if method == "prompt_tuning":
        return PromptTuningConfig(num_virtual_tokens=10, task_type=task)
    raise ValueError(f"PEFT has no equivalent of {method!r}")


class Peft(Framework):
    label = "peft"

    def setup(self) -> None:
        import peft  # noqa: F401

    def versions(self) -> dict[str, str]:
        import peft

        return {**super().versions(), "peft": getattr(peft, "__version__", "?")}

    def methods(self) -> tuple[str, ...]:
        return ("lora", "ia3", "prefix_tuning", "prompt_tuning")

    def add(self, model: Any, method: str) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, _config(method))

    def train(self, handle: Any) -> None:
        handle.train()  # get_peft_model already froze the base model

    def merge(self, handle: Any) -> Any:
        return handle.merge_and_unload()

    def save(self, handle: Any, directory: Path) -> list[Path]:
        handle.save_pretrained(str(directory))
        return sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin"))


if __name__ == "__main__":
    sys.exit(main(Peft(), sys.argv))
