"""Train a seq_bn adapter on the tiny BERT classifier, alone or in every process of a launch.

    python tests/backend/ddp_train.py OUT                       # one process, global batch 16
    python -m torch.distributed.run --nproc_per_node=2 tests/backend/ddp_train.py OUT
    accelerate launch --multi_gpu --num_processes=2 tests/backend/ddp_train.py OUT --mode trainer
    python -m torch.distributed.run --nproc_per_node=2 tests/backend/ddp_train.py OUT --mode fsdp

``--mode ddp`` (default): a plain loop; under a launcher the model is wrapped in
``DistributedDataParallel`` (gloo) and rank r trains on its 16/world share of every global batch,
so all ranks together see exactly the single-process batches. ``--mode trainer``:
``AdapterTrainer`` (which wraps the model in DDP itself under a launcher). Every rank writes its
adapter and head with ``save_trainable`` to ``OUT/rank<r>``. ``--mode fsdp``: the plain loop on
a model sharded with FSDP2 (``fully_shard`` per encoder layer and at the root, gloo on CPU);
every rank calls ``save_trainable`` (it gathers the shards) and rank 0 writes ``OUT/rank0``;
then ``AdapterTrainer`` trains a sharded model with checkpoints, and a second sharded model
resumes from the middle checkpoint (:func:`train_sharded_trainer`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from adapter_dsl.backend import add_adapter
from adapter_dsl.backend.training import load_trainable, prepare_for_training, save_trainable
from adapter_dsl.demo import synthetic_batch, tiny_classifier

GLOBAL_BATCH = 16
ADAPTER = "seq_bn[reduction_factor=2]"


def _shard(model: torch.nn.Module, world: int) -> torch.nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    for layer in model.bert.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


@contextmanager
def _process_group(world: int) -> Iterator[None]:
    import torch.distributed as dist

    if world > 1:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        if world > 1:
            dist.destroy_process_group()


def train_ddp(out: Path, steps: int, *, fsdp: bool = False) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    with _process_group(world):
        model = tiny_classifier(seed=0, dropout=0.0)
        add_adapter(model, "task", ADAPTER)
        names, head = prepare_for_training(model, "task")
        wrapped: torch.nn.Module = model
        if world > 1:
            wrapped = _shard(model, world) if fsdp else DistributedDataParallel(model)
        # After sharding: fully_shard replaces the parameters by sharded ones.
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
        data = torch.Generator().manual_seed(0)
        share = GLOBAL_BATCH // world
        for _ in range(steps):
            ids, labels = synthetic_batch(GLOBAL_BATCH, data)  # the same on every rank
            mine = slice(rank * share, (rank + 1) * share)
            loss = wrapped(input_ids=ids[mine], labels=labels[mine]).loss
            loss.backward()  # DDP and FSDP average the gradients over the ranks
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        save_trainable(model, out / f"rank{rank}", names, head)
        if fsdp and world > 1:
            # Resuming: every rank reads rank 0's files into its shards, then saves them again.
            dist.barrier()
            with torch.no_grad():
                for p in trainable:
                    p.zero_()
            load_trainable(model, out / "rank0")
            save_trainable(model, out / "reloaded", names, head)
        if fsdp and world > 1:
            train_sharded_trainer(out, steps)


def _dataset() -> list[dict[str, torch.Tensor]]:
    ids, labels = synthetic_batch(256, torch.Generator().manual_seed(0))
    return [{"input_ids": i, "labels": label} for i, label in zip(ids, labels, strict=True)]


def train_sharded_trainer(out: Path, steps: int, *, resume_from: Path | None = None) -> None:
    """``AdapterTrainer`` for ``steps`` steps (AdamW, global batch 16, a checkpoint every
    ``steps // 2``) on a model sharded with FSDP2 under a launcher, unsharded in one process;
    then a fresh model resumes from the middle checkpoint (``resume_from``'s, else this run's)
    and trains to the end. The final adapters go to ``OUT/trainer-full`` and
    ``OUT/trainer-resumed`` (written by rank 0)."""
    from transformers import TrainingArguments

    from adapter_dsl.backend.training import AdapterTrainer

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dataset = _dataset()
    middle = (resume_from or out / "trainer") / f"checkpoint-{steps // 2}"
    for run, resume in (("full", None), ("resumed", str(middle))):
        model = tiny_classifier(seed=0, dropout=0.0)
        add_adapter(model, "task", ADAPTER)
        if world > 1:
            _shard(model, world)
        args = TrainingArguments(
            output_dir=str(out / ("trainer" if run == "full" else "trainer-again")),
            use_cpu=True,
            ddp_backend="gloo" if world > 1 else None,
            report_to=[],
            disable_tqdm=True,
            per_device_train_batch_size=GLOBAL_BATCH // world,
            learning_rate=1e-2,
            max_steps=steps,
            save_strategy="steps",
            save_steps=steps // 2,
            seed=0,
            # The classifier's loss is a mean, not a sum over the global batch: the Trainer's
            # world-size scaling of it would double the gradients of a 2-rank run.
            average_tokens_across_devices=False,
        )
        trainer = AdapterTrainer(model, args, adapters="task", train_dataset=dataset)
        trainer.train(resume_from_checkpoint=resume)
        save_trainable(model, out / f"trainer-{run}", trainer.adapter_names, trainer.head_names)


def train_trainer(out: Path, steps: int) -> None:
    from transformers import TrainingArguments

    from adapter_dsl.backend.training import AdapterTrainer

    dataset = _dataset()
    model = tiny_classifier(seed=0, dropout=0.0)
    add_adapter(model, "task", ADAPTER)
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        ddp_backend="gloo",
        report_to=[],
        disable_tqdm=True,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        max_steps=steps,
        save_strategy="steps",
        save_steps=steps,
        logging_steps=1,
        seed=0,
    )
    trainer = AdapterTrainer(model, args, adapters="task", train_dataset=dataset)
    trainer.train()
    rank = trainer.args.process_index
    (out / f"world{rank}").write_text(str(trainer.args.world_size))
    save_trainable(model, out / f"rank{rank}", trainer.adapter_names, trainer.head_names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--mode", choices=["ddp", "fsdp", "trainer"], default="ddp")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mode in ("ddp", "fsdp"):
        train_ddp(args.out, args.steps, fsdp=args.mode == "fsdp")
    else:
        train_trainer(args.out, args.steps)


if __name__ == "__main__":
    main()
