"""Training adapters with the Hugging Face ``Trainer``: only the adapter (and a task head) learn,
and checkpoints hold only what was trained.

::

    from adapter_dsl.backend import add_adapter
    from adapter_dsl.backend.training import AdapterTrainer

    add_adapter(model, "task", "seq_bn[reduction_factor=8]")
    trainer = AdapterTrainer(model, args, adapters="task", train_dataset=ds)
    trainer.train()                                   # or train(resume_from_checkpoint=True)

A checkpoint directory written by :class:`AdapterTrainer` (``checkpoint-<step>/`` or the
``output_dir`` of ``save_model``) holds, next to the Trainer's optimizer, scheduler, RNG and state
files:

* ``<adapter name>/``: what :func:`~adapter_dsl.backend.save_adapter` writes (config envelope and
  ``adapter_model.safetensors``), one directory per trained adapter; each loads on its own with
  :func:`~adapter_dsl.backend.load_adapter`;
* ``head.safetensors``: the trainable parameters outside the adapters (the task head), keyed as
  in ``model.state_dict()``; absent when nothing outside the adapters is trained;
* ``adapter_checkpoint.json``: which adapters and head parameters the checkpoint holds.

No base-model weights are written. Resuming (``resume_from_checkpoint``) and
``load_best_model_at_end`` copy the saved tensors into the adapters already on the model, so the
parameters (and any optimizer built over them) stay the same objects.

Under ``torchrun`` the Trainer wraps the model in ``DistributedDataParallel``; only the process
with ``args.should_save`` writes checkpoints. :func:`prepare_for_training`,
:func:`save_trainable` and :func:`load_trainable` work without the Trainer (plain PyTorch loops,
DDP scripts). This module imports ``transformers.Trainer``, which needs ``accelerate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer

from adapter_dsl.backend import core
from adapter_dsl.backend.architectures import base_model_of
from adapter_dsl.backend.serialization import CONFIG_FILE, WEIGHTS_FILE, adapter_state_dict
from adapter_dsl.backend.serialization import load_adapter as _load_adapter
from adapter_dsl.backend.serialization import save_adapter as _save_adapter
from adapter_dsl.backend.sharding import copy_full_into, gathered, is_sharded, writes_here
from adapter_dsl.backend.state import peek_state, require_adapter
from adapter_dsl.errors import ConfigError
from adapter_dsl.loading import read_config_file

__all__ = [
    "HEAD_FILE",
    "MANIFEST_FILE",
    "AdapterTrainer",
    "head_parameter_names",
    "load_trainable",
    "prepare_for_training",
    "save_trainable",
    "trainable_state_dict",
]

MANIFEST_FILE = "adapter_checkpoint.json"
HEAD_FILE = "head.safetensors"
#: The Trainer's name for its pickled arguments (``transformers.trainer.TRAINING_ARGS_NAME``).
TRAINING_ARGS_FILE = "training_args.bin"

HeadSpec = bool | str | Sequence[str]


def _adapter_names(model: nn.Module, adapters: str | Iterable[str] | None) -> tuple[str, ...]:
    """The adapters to train: those given, else the active ones, else the only one added."""
    if isinstance(adapters, str):
        return (adapters,)
    if adapters is not None:
        names = tuple(adapters)
        if not names:
            raise ConfigError.single("no adapter to train", expected="at least one adapter name")
        return names
    state = peek_state(model)
    if state is not None and state.active:
        return state.active
    if state is not None and len(state.adapters) == 1:
        return (next(iter(state.adapters)),)
    known = list(state.adapters) if state is not None else []
    raise ConfigError.single(
        "cannot tell which adapter to train",
        expected="adapters=<name> (or exactly one added adapter, or an active setup)",
        found=", ".join(repr(k) for k in known) if known else "a model without adapters",
        code="unknown_adapter",
    )


def head_parameter_names(model: nn.Module, head: HeadSpec = True) -> list[str]:
    """Names of the parameters that train next to the adapters.

    ``True``: every parameter outside the base model (``model.base_model``) and outside every
    adapter, i.e. the task head of a ``...ForSequenceClassification`` model; parameters shared
    with the base model (tied output embeddings) are excluded. ``False``: none. A string or a
    sequence of strings: the parameters whose names equal one of them or start with
    ``<string>.`` (e.g. ``"classifier"`` or ``"bert.pooler"``).
    """
    if head is False:
        return []
    state = peek_state(model)
    owned: set[int] = set()
    if state is not None:
        for entry in state.adapters.values():
            owned.update(id(p) for p in entry.parameters())
    named = [(n, p) for n, p in model.named_parameters() if id(p) not in owned]
    if head is True:
        base = base_model_of(model)
        if base is model:
            return []
        in_base = {id(p) for p in base.parameters()}
        return [n for n, p in named if id(p) not in in_base]
    prefixes = (head,) if isinstance(head, str) else tuple(head)
    names = [n for n, _ in named if any(n == q or n.startswith(q + ".") for q in prefixes)]
    unmatched = [q for q in prefixes if not any(n == q or n.startswith(q + ".") for n in names)]
    if unmatched:
        raise ConfigError.single(
            f"no trainable head parameters match {', '.join(repr(q) for q in unmatched)}",
            expected="a module or parameter name of the model outside the adapters",
            found=", ".join(repr(q) for q in unmatched),
            code="unknown_parameter",
        )
    return names


def prepare_for_training(
    model: nn.Module,
    adapters: str | Iterable[str] | None = None,
    *,
    head: HeadSpec = True,
    fusion: Any = None,
) -> tuple[tuple[str, ...], list[str]]:
    """Freeze ``model`` except the adapters' own parameters and the head; activate the adapters.

    With ``fusion`` (a setup with a ``Fuse`` block, e.g. ``"Fuse(a, b)"``) only its fusion layers
    and the head train, the fused adapters stay frozen (``train_fusion``); ``adapters`` is then
    ignored and no adapter name is returned.

    Returns ``(adapter names, head parameter names)``. See :func:`head_parameter_names` for
    ``head``. The model is put into training mode.
    """
    if fusion is not None:
        core.train_fusion(model, fusion)
        names: tuple[str, ...] = ()
        state = peek_state(model)
        assert state is not None
        keep = {
            id(p) for entry in state.fusions.values() for p in entry.parameters() if p.requires_grad
        }
    else:
        names = _adapter_names(model, adapters)
        core.train_adapter(model, names)
        # Exactly the adapters and the chosen head train (train_adapter leaves parameters
        # outside the base model as they were).
        keep = {id(p) for n in names for p in require_adapter(model, n)[1].trainable_parameters()}
    head_names = head_parameter_names(model, head)
    params = dict(model.named_parameters())
    keep.update(id(params[n]) for n in head_names)
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return names, head_names


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel``/``DataParallel``/``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def trainable_state_dict(
    model: nn.Module, adapters: Iterable[str], head: Iterable[str] = ()
) -> dict[str, Tensor]:
    """The adapters' and head's tensors (detached, on the CPU), keyed as in ``state_dict()``."""
    model = _unwrap(model)
    out: dict[str, Tensor] = {}
    for name in adapters:
        entry = require_adapter(model, name)[1]
        for key, tensor in adapter_state_dict(model, entry).items():
            out[key] = tensor.detach().to("cpu").clone()
    params = dict(model.named_parameters())
    for n in head:
        out[n] = params[n].detach().to("cpu").clone()
    return out


def save_trainable(
    model: nn.Module,
    directory: str | os.PathLike[str],
    adapters: Iterable[str],
    head: Iterable[str] = (),
) -> Path:
    """Write the adapters (one :func:`save_adapter` directory each) and head to ``directory``."""
    from safetensors.torch import save_file

    model = _unwrap(model)
    target = Path(directory)
    names = list(adapters)
    head_names = list(head)
    params = dict(model.named_parameters())
    # Every rank of a fully_shard model gathers (collectives, in the same order); rank 0 writes.
    tensors, _ = gathered({n: params[n] for n in head_names})
    writer = writes_here(is_sharded(model))
    if writer:
        target.mkdir(parents=True, exist_ok=True)
    for name in names:
        _save_adapter(model, name, target / name)
    if not writer:
        return target
    head_path = target / HEAD_FILE
    if head_names:
        tmp = head_path.with_name(f".{HEAD_FILE}.{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, head_path)
    elif head_path.exists():
        head_path.unlink()
    manifest = {
        "adapters": names,
        "head": head_names,
        "head_file": HEAD_FILE if head_names else None,
    }
    tmp_manifest = target / f".{MANIFEST_FILE}.{os.getpid()}"
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, target / MANIFEST_FILE)
    return target


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "bad_checkpoint"), **kw)


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    try:
        data = json.loads(read_config_file(path, str(path)))  # bounded, regular files only
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise _fail(
            f"'{directory}' is not an adapter checkpoint: cannot read {MANIFEST_FILE} ({exc})",
            expected=f"a directory written by save_trainable() or AdapterTrainer, with {MANIFEST_FILE}",
            found=str(directory),
        ) from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("adapters"), list)
        or not isinstance(data.get("head", []), list)
    ):
        raise _fail(f"{path} is malformed", expected='{"adapters": [...], "head": [...]}')
    for entry in [*data["adapters"], data.get("head_file") or HEAD_FILE]:
        _plain_name(entry, path)
    return data


def _plain_name(entry: Any, manifest: Path) -> str:
    """A name from the manifest, used as a path under the checkpoint directory: relative and
    without ``..``, so that data in the file never names a file elsewhere (``../x``, ``/etc``)."""
    name = str(entry)
    path = Path(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise _fail(
            f"{manifest} names {name[:80]!r}, which is not a file or folder of the checkpoint",
            expected="plain names of entries of the checkpoint directory",
            found=repr(name[:80]),
            code="path_in_data",
        )
    return name


def _copy_checked(
    targets: dict[str, Tensor], source: dict[str, Tensor], where: Path, problems: list[str]
) -> list[tuple[Tensor, Tensor]]:
    pairs: list[tuple[Tensor, Tensor]] = []
    for key in sorted(set(source) - set(targets)):
        problems.append(f"unexpected tensor '{key}' in {where.name}")
    for key, target in targets.items():
        if key not in source:
            problems.append(f"missing tensor '{key}' in {where.name}")
        elif tuple(source[key].shape) != tuple(target.shape):
            problems.append(
                f"'{key}' has shape {list(source[key].shape)} in {where.name}, the model expects "
                f"{list(target.shape)}"
            )
        else:
            pairs.append((target, source[key]))
    return pairs


def load_trainable(model: nn.Module, directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a :func:`save_trainable` checkpoint into ``model`` and activate its adapters.

    Adapters already on ``model`` (resuming a run set up as before) must have the saved configs;
    their tensors are copied in place, so parameters keep their identity. Adapters missing from
    ``model`` are added with :func:`~adapter_dsl.backend.load_adapter`. The head tensors are
    copied into the model's parameters of the same names. Everything is checked before the first
    copy: on a ``ConfigError`` the model is as before. Returns the manifest.
    """
    from safetensors.torch import load_file

    from adapter_dsl import dumps, load

    model = _unwrap(model)
    root = Path(directory)
    manifest = _read_manifest(root)
    names = [str(n) for n in manifest["adapters"]]
    problems: list[str] = []
    pairs: list[tuple[Tensor, Tensor]] = []
    added: list[str] = []
    state_before = peek_state(model)
    active_before = state_before.active if state_before is not None else ()
    try:
        for name in names:
            state = peek_state(model)
            if state is None or name not in state.adapters:
                _load_adapter(model, root / name, load_as=name, set_active=False)
                added.append(name)
                continue
            entry = state.adapters[name]
            saved = load(root / name / CONFIG_FILE)
            if saved != entry.config:
                raise _fail(
                    f"adapter '{name}' in '{root}' was saved with another config",
                    expected=dumps(entry.config),
                    found=dumps(saved),
                    code="config_mismatch",
                )
            weights = root / name / WEIGHTS_FILE
            try:
                source = load_file(str(weights))
            except Exception as exc:
                raise _fail(f"cannot read {weights}: {exc}", found=str(weights)) from exc
            pairs += _copy_checked(adapter_state_dict(model, entry), source, weights, problems)
        head_names = [str(n) for n in manifest.get("head") or []]
        if head_names:
            head_path = root / str(manifest.get("head_file") or HEAD_FILE)
            try:
                source = load_file(str(head_path))
            except Exception as exc:
                raise _fail(f"cannot read {head_path}: {exc}", found=str(head_path)) from exc
            params = dict(model.named_parameters())
            problems += [f"the model has no parameter '{n}'" for n in head_names if n not in params]
            targets: dict[str, Tensor] = {n: params[n] for n in head_names if n in params}
            pairs += _copy_checked(targets, source, head_path, problems)
        if problems:
            shown = "; ".join(problems[:5]) + (
                f"; … {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            raise _fail(f"the checkpoint in '{root}' does not match the model: {shown}")
    except BaseException:
        for name in reversed(added):
            core.delete_adapter(model, name)
        state_after = peek_state(model)
        if state_after is not None:
            state_after.active = active_before
        raise
    with torch.no_grad():
        for target, value in pairs:
            copy_full_into(target, value)  # a fully_shard parameter takes its shard
    if names:
        core.set_active(model, names)
    return manifest


class AdapterTrainer(Trainer):
    """``transformers.Trainer`` that trains adapters (and the task head) and checkpoints only them.

    ``adapters``: the adapter name(s) to train (default: the active adapters, or the only one).
    ``fusion``: train the fusion layers of this setup instead (e.g. ``"Fuse(a, b)"``; the fused
    adapters stay frozen); its value regularisation is added to the loss when the fusion config
    sets ``regularization`` (the reference back-propagates it after each optimiser step, so it
    reaches the next step's gradients; here it joins the step's own loss), and checkpoints hold
    the fusions (``<fusion name>/``) and the head.
    ``head``: which parameters outside the adapters train too (see :func:`head_parameter_names`;
    default: the task head). Every other argument is the Trainer's. The model is frozen and the
    adapters activated when the trainer is built; an ``optimizers=`` pair passed in must cover the
    parameters that require gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        args: Any = None,
        *,
        adapters: str | Iterable[str] | None = None,
        head: HeadSpec = True,
        fusion: Any = None,
        **kwargs: Any,
    ) -> None:
        self.adapter_names, self.head_names = prepare_for_training(
            model, adapters, head=head, fusion=fusion
        )
        state = peek_state(model)
        node = state.active_setup() if fusion is not None and state is not None else None
        self.fusion_names: tuple[str, ...] = (
            tuple(b.name for b in node.walk() if b.kind == "Fuse") if node is not None else ()
        )
        self._regularize = any(
            getattr(state.fusions[n].config, "regularization", False)
            for n in self.fusion_names
            if state is not None
        )
        super().__init__(model=model, args=args, **kwargs)

    def compute_loss(self, model: nn.Module, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        result = super().compute_loss(model, inputs, *args, **kwargs)
        if not self._regularize:
            return result
        from adapter_dsl.backend.methods.fusion import fusion_regularization_loss

        reg = fusion_regularization_loss(_unwrap(model))
        if isinstance(result, tuple):
            return (result[0] + reg.to(result[0].device), *result[1:])
        return result + reg.to(result.device)

    # -- saving: called by save_model() and for every checkpoint ----------------------------
    def _save(
        self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None
    ) -> None:
        target = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return  # only the main process writes (the adapter is identical on every rank)
        if target is None:
            raise ValueError("no output directory: pass output_dir or set args.output_dir")
        save_trainable(self._own_model(), target, self.adapter_names, self.head_names)
        if self.fusion_names:
            from adapter_dsl.backend.fusion_io import save_fusion

            for fname in self.fusion_names:
                save_fusion(self._own_model(), fname, Path(target) / fname)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(target)
        torch.save(self.args, os.path.join(target, TRAINING_ARGS_FILE))

    def _own_model(self) -> nn.Module:
        model = self.model
        if not isinstance(model, nn.Module):
            raise TypeError("the trainer has no model")
        return model

    # -- loading: resume_from_checkpoint and load_best_model_at_end ---------------------------
    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        if not (Path(resume_from_checkpoint) / MANIFEST_FILE).is_file():
            # A checkpoint of a whole model (e.g. from a plain Trainer): the Trainer's own loader.
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        load_trainable(model if model is not None else self._own_model(), resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        if best is None or not (Path(best) / MANIFEST_FILE).is_file():
            super()._load_best_model()
            return
        load_trainable(self._own_model(), best)
