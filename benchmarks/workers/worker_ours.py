"""Benchmark worker for adapter_dsl (runs in .venv). See bench_common.py for the job protocol."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench_common import NAME, Framework, main

#: Config strings per benchmark method (the reference's identifiers, with its defaults).
CONFIGS = {
    m: m
    for m in ("seq_bn", "par_bn", "lora", "ia3", "prefix_tuning", "prompt_tuning", "mam", "unipelt")
}


class Ours(Framework):
    label = "ours"

    def setup(self) -> None:
        from adapter_dsl import backend

        self.backend: Any = backend

    def versions(self) -> dict[str, str]:
        import adapter_dsl

        return {**super().versions(), "adapter_dsl": getattr(adapter_dsl, "__version__", "?")}

    def methods(self) -> tuple[str, ...]:
        return tuple(CONFIGS)

    def add(self, model: Any, method: str) -> Any:
        self.backend.add_adapter(model, NAME, CONFIGS[method])
        return model

    def activate(self, handle: Any) -> None:
        self.backend.set_active(handle, NAME)

    def train(self, handle: Any) -> None:
        self.backend.train_adapter(handle, NAME)

    def merge(self, handle: Any) -> Any:
        self.backend.merge_adapter(handle, NAME)
        return handle

    def save(self, handle: Any, directory: Path) -> list[Path]:
        self.backend.save_adapter(handle, NAME, directory)
        return sorted(directory.glob("*.safetensors"))


if __name__ == "__main__":
    sys.exit(main(Ours(), sys.argv))
