"""Conversion between adapter configs and PEFT's ``adapter_config.json`` dicts.

:func:`to_peft` writes the PEFT dict of a config for one model type; :func:`from_peft` reads one
back. Neither imports torch, transformers or peft: module names come from :data:`MODULES`,
derived from the model-type table :data:`adapter_dsl.model_types.MODEL_TYPES` (plain data that
the backend resolves on models).

The package: :mod:`.convert` (the two entry points), :mod:`.lora` (LoRA and IA³, both
directions), :mod:`.prompts` (prefix and prompt tuning, both directions), :mod:`.targets`
(PEFT's target-module matching, on RE2), :mod:`.models` (module names per model type) and
:mod:`.common` (reading PEFT values, located problems).

What maps onto what:

* LoRA (``peft_type`` ``LORA``): ``r`` ↔ ``r``, ``alpha`` ↔ ``lora_alpha`` (both scale by
  alpha/r; PEFT's ``use_rslora`` scaling alpha/√r is read as ``alpha = lora_alpha·√r``),
  ``dropout`` ↔ ``lora_dropout``, ``use_dora`` ↔ ``use_dora``; ``attn_matrices`` and the
  location flags ↔ ``target_modules``; ``leave_out`` ↔ the layers ``target_modules`` matches.
  Attention output projections (``o_proj``, ``out_proj``, ``attention.output.dense``) ↔
  ``attn_output_lora`` and feed-forward gates (``gate_proj``, gated T5's ``wi_0``) ↔
  ``gate_lora``: extensions, in ``to_dict()`` only when set. ``target_modules="all-linear"``
  is every Linear but the output embeddings (so poolers and projections outside the layers are
  a problem, unless ``exclude_modules`` leaves them out); a config without ``target_modules``
  gets PEFT's defaults for the model type (:mod:`.defaults`).
* IA³ (``IA3``, a LoRA config with ``composition_mode='scale'``): PEFT scales the *output* of
  every target module that is not in ``feedforward_modules``, which is what IA³ here does on
  every module (the bias is scaled too, in both), and the *input* of those that are, which is
  ``input_scaling`` here (its locations: ``attn_output``, ``intermediate``, ``output``,
  ``gate``; PEFT matches ``feedforward_modules`` with a plain ``endswith``). Without
  ``feedforward_modules`` PEFT's per-model default applies. PEFT IA³ has no scaling factor, so
  ``alpha`` must be 1.
* Prefix tuning (``PREFIX_TUNING``): ``num_virtual_tokens`` ↔ ``prefix_length``,
  ``prefix_projection`` ↔ ``not flat``, ``encoder_hidden_size`` ↔ ``bottleneck_size`` (with the
  projection; PEFT's MLP is Linear–Tanh–Linear, so ``non_linearity`` must be ``tanh``). PEFT's
  prefixes are a key/value cache, after which the inputs' positions start at
  ``num_virtual_tokens``: ``shift_positions=True`` (required by :func:`to_peft`).
* Prompt tuning (``PROMPT_TUNING``): ``num_virtual_tokens`` ↔ ``prompt_length``,
  ``prompt_tuning_init`` ``RANDOM`` / ``TEXT`` ↔ ``prompt_init`` ``random_uniform`` /
  ``from_string`` (``prompt_tuning_init_text`` ↔ ``prompt_init_text``). Only the initial values
  differ: PEFT's RANDOM draws from N(0, 1), random_uniform from U(-0.5, 0.5). PEFT joins the
  prompts to the token embeddings before the embedding layer: ``before_embeddings=True``
  (the reference's placement, after the embedding layer, does not convert to PEFT).

Target modules. PEFT matches a list entry ``t`` against a module name ``n`` when ``n == t`` or
``n`` ends with ``"." + t``; a string is a regular expression that must match the whole name.
:func:`to_peft` writes a sorted list of the shortest suffixes when they hit exactly the intended
modules and nothing else, and a regular expression otherwise: on BERT the suffix
``output.dense`` would also hit ``attention.output.dense`` (the attention output projection,
never adapted here), so ``output_lora`` on BERT becomes a regex anchored at the layer path, and
``leave_out`` becomes a layer-index pattern that excludes the listed indices (PEFT ignores
``layers_to_transform`` for regex targets). The regex accepts any prefix before the layer path,
so it matches bare models (``encoder.layer.0…``) and models with a head (``bert.encoder…``).
:func:`from_peft` runs PEFT's matching rules (including ``layers_to_transform``,
``layers_pattern`` and ``exclude_modules``; regular expressions on RE2, see
:mod:`adapter_dsl.peft.targets`) against the module names of the model type, then
requires one set of adapted modules shared by every adapted layer, without any module outside
the transformer layers (poolers, heads).

Layer numbers. ``leave_out`` uses the reference's numbering: encoder layers first, the decoder's
continue the count. PEFT numbers the layers of each stack from 0. For single-stack models no
layer count is needed (the regex excludes the listed indices). For encoder-decoder models
(BART), ``leave_out`` entries in the decoder need ``num_layers=(encoder_layers,
decoder_layers)``; :func:`from_peft` needs it too when the PEFT config skips layers of such a
model, or, for any model, when it skips all layers from some index on (the layer count decides
whether that skips anything). Without it, up to :data:`PROBE_LAYERS` layers per stack are probed.

GPT-2's fused ``c_attn``. The reference gives each of q, k and v its own ``lora_A`` (rank r
each); PEFT's LoRA on ``c_attn`` shares one ``lora_A`` across the three. Every PEFT ``c_attn``
LoRA is therefore a reference LoRA with ``attn_matrices=['q','k','v']`` whose three A matrices
are equal (:func:`from_peft` accepts it, and the backend loads its weights exactly), but the
reverse does not hold: :func:`to_peft` of a GPT-2 LoRA with ``selfattn_lora`` is a
``ConfigError``. IA³ on ``c_attn`` scales every output row in both libraries, so it converts in
both directions when all of q, k and v are adapted (PEFT cannot scale only some of them).

DoRA. ``use_dora`` converts in both directions, but the two libraries compute DoRA slightly
differently: PEFT normalises ``W + (alpha/r)·BA`` and leaves the bias unscaled, the reference
normalises ``W + BA`` and rescales the bias. They agree when ``alpha == r`` and the adapted
modules have no bias (e.g. LLaMA).

PEFT dicts are untrusted input: booleans must be JSON ``true``/``false`` (a string such as
``"false"`` is a located problem, never read as true), sizes are bounded (``num_layers`` at most
:data:`MAX_LAYERS` per stack; patterns and name lists in :mod:`adapter_dsl.peft.targets`), and
every bad value is a located ``ConfigError``.

Everything else is a ``ConfigError`` naming what PEFT cannot express (bottleneck adapters,
unions, ReFT, MTL-LoRA, gating, VeRA's full ``vera_D``/``vera_B`` matrices, seeds, dtypes, …) or
what this package cannot express (PEFT options that change the computation, such as
``bias``, ``rank_pattern``, ``modules_to_save`` or ``lora_bias``).
"""

from .convert import from_peft, to_peft
from .models import MODULES, PROBE_LAYERS, ModelModules, StackModules

__all__ = ["MODULES", "PROBE_LAYERS", "ModelModules", "StackModules", "from_peft", "to_peft"]
