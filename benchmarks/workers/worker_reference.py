"""Benchmark worker for the reference library, adapters 1.3.0 (runs in .venv-ref).

``add`` times what a user of the reference runs on a plain model: ``adapters.init(model)``
followed by ``model.add_adapter(name, config=identifier)``. See bench_common.py for the protocol.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from bench_common import NAME, Framework, main

METHODS = ("seq_bn", "par_bn", "lora", "ia3", "prefix_tuning", "prompt_tuning", "mam", "unipelt")


class Reference(Framework):
    label = "reference"

    def setup(self) -> None:
        logging.disable(logging.WARNING)
        import adapters

        self.adapters: Any = adapters

    def versions(self) -> dict[str, str]:
        import adapters

        return {**super().versions(), "adapters": getattr(adapters, "__version__", "?")}

    def methods(self) -> tuple[str, ...]:
        return METHODS

    def add(self, model: Any, method: str) -> Any:
        self.adapters.init(model)
        model.add_adapter(NAME, config=method)
        return model

    def activate(self, handle: Any) -> None:
        handle.set_active_adapters(NAME)

    def train(self, handle: Any) -> None:
        handle.train_adapter(NAME)

    def merge(self, handle: Any) -> Any:
        handle.merge_adapter(NAME)
        return handle

    def save(self, handle: Any, directory: Path) -> list[Path]:
        handle.save_adapter(str(directory), NAME)
        return sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin"))


if __name__ == "__main__":
    sys.exit(main(Reference(), sys.argv))
