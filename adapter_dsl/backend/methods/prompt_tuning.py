"""Prompt tuning (reference §3.4): learned soft-prompt embeddings inserted after the embeddings.

``prompt_tuning.prompt_tunings.<name>.prompt_embedding`` (``Embedding(L, embedding_size)``) lives
on the base model. A forward hook on the table's embedding module combines the prompt with the
embedded input: ``combine="prefix"`` gives ``[P; E]``, ``"prefix_after_bos"`` gives
``[E₀; P; E₁:]``. On BERT-style models the embedding module's output already includes position
embeddings, so prompts get none (as in the reference). The output sequence grows by ``L``.

The base model's forward prepends ``L`` ones to a given 2-D ``attention_mask`` (also for
``prefix_after_bos``, as in the reference); without a mask nothing changes. It is an instance
attribute (:class:`PromptMaskForward`), not a forward pre-hook: ``torch.compile(model)`` runs a
module's hooks outside its compiled frame, each as a frame and graph of its own. Only the first active

``before_embeddings`` (an extension, PEFT's prompt tuning): the same forward embeds
``input_ids`` with the model's input embeddings, joins the prompt to them and calls the model
with ``inputs_embeds``, so the embedding layer adds positions and norms to the prompts too
(``token_type_ids`` get ``L`` zeros in front). It works on every model type whose base model
takes ``inputs_embeds`` and has token embeddings, decoder-only and encoder-decoder ones included
(whose encoder gets the prompts, as PEFT does). Only the first active
prompt-tuning adapter is applied. Supported where the table's row says ``prompt_tuning=True``
(BERT, RoBERTa), as in the reference.

Initialisation: ``random_uniform`` draws from ``U(-s, s)`` with ``s = random_uniform_scale``
(0.5 by default; a config field here). ``from_string`` embeds the tokenised ``prompt_init_text``
with the model's input embeddings (repeated or truncated to ``L``, cast to float32). The tokenizer
is taken from :func:`set_prompt_tokenizer` (any callable returning ``{"input_ids": [...]}`` or a
list of ids, e.g. a Hugging Face tokenizer) or, like the reference, loaded with ``AutoTokenizer``
from ``model.config.tokenizer_name_or_path``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, cast

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import ModelSpec, base_model_of, resolve
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.methods.common import init_seed
from adapter_dsl.backend.state import Ledger, get_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.prompt_tuning import PromptTuningConfig

__all__ = [
    "PromptMaskForward",
    "PromptTuning",
    "PromptTuningHandler",
    "PromptTuningLayer",
    "set_prompt_tokenizer",
]

POOL_ATTR = "prompt_tuning"
TOKENIZER_ATTR = "_adapter_dsl_prompt_tokenizer"
DEFAULT_SCALE = 0.5


def set_prompt_tokenizer(model: nn.Module, tokenizer: Any) -> None:
    """Give ``model`` the tokenizer used by ``prompt_init="from_string"``.

    Stored as a plain attribute (not a module), so it is neither saved nor moved by ``.to()``.
    """
    model.__dict__[TOKENIZER_ATTR] = tokenizer


def _tokenizer(model: nn.Module) -> Any:
    for owner in (model, base_model_of(model)):
        tokenizer = owner.__dict__.get(TOKENIZER_ATTR)
        if tokenizer is not None:
            return tokenizer
    path = getattr(base_model_of(model).config, "tokenizer_name_or_path", None)
    if path:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    return None


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    result = tokenizer(text)
    ids = result["input_ids"] if isinstance(result, Mapping) or hasattr(result, "keys") else result
    return [int(i) for i in ids]


class PromptTuning(nn.Module):
    """One adapter's prompt: ``prompt_embedding`` and the combination with the embedded input."""

    def __init__(
        self, length: int, embedding_size: int, combine: str, *, before_embeddings: bool = False
    ) -> None:
        super().__init__()
        if combine not in ("prefix", "prefix_after_bos"):
            raise ValueError(f"unknown combine '{combine}'")
        self.combine = combine
        self.before_embeddings = before_embeddings
        self.prompt_embedding = nn.Embedding(length, embedding_size)

    @property
    def length(self) -> int:
        return self.prompt_embedding.num_embeddings

    def forward(self, embedded: Tensor) -> Tensor:
        prompt = self.prompt_embedding.weight.to(embedded.dtype)
        prompt = prompt.unsqueeze(0).expand(embedded.shape[0], -1, -1)
        if self.combine == "prefix":
            return torch.cat([prompt, embedded], dim=1)
        return torch.cat([embedded[:, :1], prompt, embedded[:, 1:]], dim=1)


class PromptTuningLayer(nn.Module):
    """``prompt_tuning`` on the base model: every adapter's prompt plus the active-prompt lookup."""

    def __init__(self, state: Any) -> None:
        super().__init__()
        self.prompt_tunings = nn.ModuleDict()
        self._state = (state,)  # not registered
        self.handles: list[Any] = []

    def current(self) -> PromptTuning | None:
        """The first active prompt-tuning adapter, if any."""
        for name, _ in self._state[0].active_members("prompt_tuning"):
            if name in self.prompt_tunings:
                return self.prompt_tunings[name]  # type: ignore[return-value]
        return None


# ConfigError.single with this module's default code (a call may pass another).
_error = partial(ConfigError.single, code="unsupported_config")


class PromptTuningHandler(MethodHandler[PromptTuningConfig]):
    """Adds prompt embeddings after the embedding module and extends the attention mask."""

    family = "prompt_tuning"

    def needs_row(self, config: PromptTuningConfig) -> bool:
        # Prompts before the embeddings need only inputs_embeds, which check() looks for.
        return not config.before_embeddings

    def check(self, model: nn.Module, arch: ModelSpec, config: PromptTuningConfig) -> None:
        if config.before_embeddings:
            _check_inputs_embeds(model, arch)
        elif not arch.supports("prompt_tuning"):
            raise _error(
                f"prompt tuning is not supported on '{arch.model_type}' models",
                expected="a model type with prompt tuning (bert, roberta)",
                found=arch.model_type,
                code="unsupported_method",
            )
        if config.prompt_length < 0:
            raise _error("prompt_length must be >= 0", found=str(config.prompt_length))
        if config.combine not in ("prefix", "prefix_after_bos"):
            raise _error(
                "unknown combine",
                expected="'prefix' or 'prefix_after_bos'",
                found=repr(config.combine),
            )
        if config.prompt_init == "from_string":
            if not config.prompt_init_text:
                raise _error(
                    "prompt_init='from_string' needs prompt_init_text",
                    expected="a non-empty prompt_init_text",
                    found=repr(config.prompt_init_text),
                )
            has_tokenizer = any(
                o.__dict__.get(TOKENIZER_ATTR) is not None for o in (model, base_model_of(model))
            ) or getattr(base_model_of(model).config, "tokenizer_name_or_path", None)
            if not has_tokenizer:
                raise _error(
                    "prompt_init='from_string' needs a tokenizer",
                    expected="a tokenizer",
                    found="none",
                    suggestion="call adapter_dsl.backend.methods.prompt_tuning.set_prompt_tokenizer(model, tokenizer) "
                    "or set model.config.tokenizer_name_or_path",
                )
        elif config.prompt_init != "random_uniform":
            raise _error(
                "unknown prompt_init",
                expected="'random_uniform' or 'from_string'",
                found=repr(config.prompt_init),
            )
        if resolve(base_model_of(model), arch.embeddings) is None:
            raise _error(f"the model has no embedding module at '{arch.embeddings}'")

    def check_members(
        self, model: nn.Module, arch: ModelSpec, configs: Sequence[PromptTuningConfig]
    ) -> None:
        if len(configs) > 1:
            raise _error(
                "a union can hold at most one prompt-tuning config", found=f"{len(configs)}"
            )

    def add(
        self,
        model: nn.Module,
        arch: ModelSpec,
        name: str,
        config: PromptTuningConfig,
        ledger: Ledger,
    ) -> None:
        base = base_model_of(model)
        layer = _layer(base, arch, get_state(model, arch), ledger)
        word_embeddings = cast(nn.Embedding, cast(Any, base).get_input_embeddings())
        hf_config: Any = base.config
        size = int(getattr(hf_config, "embedding_size", None) or hf_config.hidden_size)
        if config.before_embeddings:
            size = word_embeddings.embedding_dim
        prompt = PromptTuning(
            config.prompt_length, size, config.combine, before_embeddings=config.before_embeddings
        )
        with init_seed(config.init_weights_seed), torch.no_grad():
            if config.prompt_init == "random_uniform":
                scale = float(getattr(config, "random_uniform_scale", DEFAULT_SCALE))
                nn.init.uniform_(prompt.prompt_embedding.weight, -scale, scale)
            else:
                text = config.prompt_init_text
                assert text  # from_string needs a text: a cross-field rule of the config
                prompt.prompt_embedding.weight.copy_(
                    _text_embedding(
                        _tokenizer(model),
                        text,
                        config.prompt_length,
                        word_embeddings,
                    )
                )
        prompt.to(device=word_embeddings.weight.device, dtype=word_embeddings.weight.dtype)
        prompt.train(layer.training)
        ledger.add_entry(layer.prompt_tunings, name, prompt)


def _check_inputs_embeds(model: nn.Module, arch: ModelSpec) -> None:
    """``before_embeddings`` needs token embeddings and a base model taking ``inputs_embeds``."""
    base = base_model_of(model)
    getter = getattr(base, "get_input_embeddings", None)
    embeddings = getter() if callable(getter) else None
    takes = "inputs_embeds" in inspect.signature(base.forward).parameters
    if not isinstance(embeddings, nn.Embedding) or not takes:
        raise _error(
            f"prompt tuning before the embeddings needs token embeddings and a model that "
            f"takes inputs_embeds; '{arch.model_type}' models ({type(base).__name__}) "
            + (
                "have no token embeddings"
                if not isinstance(embeddings, nn.Embedding)
                else "take no inputs_embeds"
            ),
            expected="a text model (input_ids)",
            found=arch.model_type,
            code="unsupported_method",
        )


def _text_embedding(tokenizer: Any, text: str, length: int, embeddings: nn.Embedding) -> Tensor:
    """Embeddings of ``text``'s tokens, repeated or truncated to ``length`` rows (float32)."""
    ids = _token_ids(tokenizer, text)
    if not ids:
        raise _error("prompt_init_text produced no tokens", found=repr(text))
    ids = (ids * math.ceil(length / len(ids)))[:length]
    weight = embeddings.weight
    return embeddings(torch.tensor(ids, device=weight.device)).detach().to(torch.float32)


# Hooks are module-level functions bound with functools.partial (not closures): a deep copy of
# the model then copies the bound objects too, so the copy's hooks act on the copy's modules.


def _add_prompt(layer: PromptTuningLayer, module: nn.Module, args: Any, output: Tensor) -> Tensor:
    prompt = layer.current()
    return output if prompt is None or prompt.before_embeddings else prompt(output)


class PromptMaskForward:
    """``base.forward`` while prompt tuning is on the model: the active prompt's ones go in front
    of the attention mask, then the forward that was there runs (the class's, or one set on the
    instance before). Inside ``torch.compile``'s frame, unlike a forward pre-hook."""

    def __init__(self, layer: PromptTuningLayer, base: nn.Module) -> None:
        self.layer = layer
        self.base = base
        self.inner: Any = base.__dict__.get("forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        prompt = self.layer.current()
        if prompt is not None:
            if prompt.before_embeddings:
                args, kwargs = _embed_with_prompt(prompt, self.base, args, kwargs)
            if "attention_mask" in kwargs:
                kwargs["attention_mask"] = _prepend_ones(kwargs["attention_mask"], prompt.length)
            elif len(args) > 1:
                args = (args[0], _prepend_ones(args[1], prompt.length), *args[2:])
        if self.inner is not None:
            return self.inner(*args, **kwargs)
        return type(self.base).forward(self.base, *args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        # What callers inspect (the Trainer's column filter, accelerate): the model's own.
        if self.inner is not None:
            return inspect.signature(self.inner)
        return inspect.signature(partial(type(self.base).forward, self.base))

    def remove(self) -> None:
        """Put back the forward that was there (only if none was set on top of this one)."""
        if self.base.__dict__.get("forward") is self:
            if self.inner is None:
                del self.base.__dict__["forward"]
            else:
                self.base.__dict__["forward"] = self.inner


def _embed_with_prompt(
    prompt: PromptTuning, base: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call with ``input_ids`` replaced by ``inputs_embeds`` that start with the prompt."""
    ids = kwargs.pop("input_ids", None)
    if ids is None and args:
        ids, args = args[0], args[1:]
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        if ids is None:
            return args, kwargs  # nothing to prompt (e.g. a decoder-only call with a cache)
        embeds = cast(Any, base).get_input_embeddings()(ids)
    kwargs["inputs_embeds"] = prompt(embeds)
    types = kwargs.get("token_type_ids")
    if isinstance(types, Tensor) and types.dim() == 2:
        pad = types.new_zeros(types.shape[0], prompt.length)
        kwargs["token_type_ids"] = torch.cat([pad, types], dim=1)
    if args:  # the mask was positional after input_ids: keep the rest as keywords
        kwargs.setdefault("attention_mask", args[0])
        args = ()
    return args, kwargs


def _layer(base: nn.Module, arch: ModelSpec, state: Any, ledger: Ledger) -> PromptTuningLayer:
    """The base model's ``prompt_tuning`` and its hooks, created on first use, removed when empty."""
    existing = base._modules.get(POOL_ATTR)
    if isinstance(existing, PromptTuningLayer):
        layer = existing
    else:
        layer = PromptTuningLayer(state)
        layer.train(base.training)
        base.add_module(POOL_ATTR, layer)
        embeddings = resolve(base, arch.embeddings)
        assert embeddings is not None
        forward = PromptMaskForward(layer, base)
        layer.handles = [embeddings.register_forward_hook(partial(_add_prompt, layer)), forward]
        base.__dict__["forward"] = forward
    ledger.on_undo(_drop_layer_if_empty, base, layer)
    return layer


def _drop_layer_if_empty(base: nn.Module, layer: PromptTuningLayer) -> None:
    if len(layer.prompt_tunings) == 0 and base._modules.get(POOL_ATTR) is layer:
        for handle in layer.handles:
            handle.remove()
        del base._modules[POOL_ATTR]


def _prepend_ones(mask: Any, length: int) -> Any:
    if not isinstance(mask, Tensor) or mask.dim() != 2:
        return mask
    return torch.cat([mask.new_ones(mask.shape[0], length), mask], dim=1)
