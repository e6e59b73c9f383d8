"""A Hydra app whose adapter is a config group, validated by adapter_dsl.

    python examples/hydra_app/train.py                      # lora[...] from conf/adapter/lora.yaml
    python examples/hydra_app/train.py adapter.r=16         # override a field
    python examples/hydra_app/train.py adapter=seq_bn       # another file of the group
    python examples/hydra_app/train.py adapter.r=0          # exit 1 with the located problem

Needs ``pip install 'adapter_dsl[hydra]'``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import adapter_dsl


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        adapter = adapter_dsl.load(cfg.adapter)  # interpolations are resolved
    except adapter_dsl.ConfigError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    print(f"model={cfg.model} adapter={adapter_dsl.dumps(adapter)}")
    # ... add_adapter(model, "task", adapter); train ...


if __name__ == "__main__":
    main()
