"""The surfaces that turn input into configs: strings, dicts, JSON files and saved adapters.

``load`` accepts whatever ``add_adapter(config=...)`` accepts in the reference: an identifier, a
config string, a config object, a dict (a config's ``to_dict()`` or a saved ``adapter_config.json``
envelope) or a path to a JSON file. It never touches the network.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigWarning, Location, Problem, did_you_mean, quote
from .jsonpos import line_col, locate_problems
from .lazy import resolve
from .limits import ENV_VAR, max_length
from .methods.base import AdapterConfig
from .methods.bottleneck import AdapterPlusConfig, BnConfig
from .methods.lora import LoRAConfig, MTLLoRAConfig
from .methods.prefix_tuning import PrefixTuningConfig
from .methods.prompt_tuning import PromptTuningConfig
from .methods.reft import ReftConfig
from .methods.union import ConfigUnion, union_class_of
from .registry import IDENTIFIERS, preset_config
from .semantics import build
from .syntax.parser import parse_text

__all__ = ["config_from_dict", "load", "load_file", "load_lenient", "parse"]

# architecture value in a dict → the family's root class. Missing/None means bottleneck in the
# reference; "bottleneck" is accepted too (the reference raises KeyError on it).
FAMILIES: dict[str | None, type[AdapterConfig]] = {
    None: BnConfig,
    "bottleneck": BnConfig,
    "prefix_tuning": PrefixTuningConfig,
    "prompt_tuning": PromptTuningConfig,
    "lora": LoRAConfig,
    "mtl_lora": MTLLoRAConfig,
    "reft": ReftConfig,
    "union": ConfigUnion,
}

# Keys of a saved adapter's adapter_config.json around the config itself.
ENVELOPE_KEYS = frozenset(
    {"config", "hidden_size", "model_class", "model_name", "model_type", "name", "version", "type"}
)


_CACHED_LENGTH = 4096  # longer strings are parsed afresh: the cache holds its keys


def _is_count(value: Any) -> bool:
    # JSON has one number type: 768.0 is 768 (as for the configs' integer fields).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


# What the envelope's own keys must hold (the saved-adapter schema states the same). A wrong
# type is an error, not ignored: a non-string version, say, would silently select the legacy
# fix-ups of files written without one.
_ENVELOPE_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "$schema": (_is_text, "a string"),
    "hidden_size": (lambda v: v is None or _is_count(v), "an integer ≥ 1, or null"),
    "model_class": (_is_text, "a string"),
    "model_name": (_is_text, "a string"),
    "model_type": (_is_text, "a string"),
    "name": (_is_text, "a string"),
    "version": (_is_text, "a string such as 'adapters.1.3.0'"),
    "type": (lambda v: v in ("text_task", "text_lang"), "'text_task' or 'text_lang'"),
}


def _envelope_problems(data: Mapping[str, Any], keys: Sequence[str]) -> list[Problem]:
    return [
        Problem(
            f"invalid value for '{key}' in a saved adapter's adapter_config.json",
            Location(path=(key,)),
            expected=_ENVELOPE_VALUES[key][1],
            found=repr(data[key])[:60],
            code="type",
        )
        for key in keys
        if key in data and not _ENVELOPE_VALUES[key][0](data[key])
    ]


def parse(text: str) -> AdapterConfig:
    """Parse and validate a config string (``"lora[r=16]|seq_bn"``)."""
    if not isinstance(text, str):
        raise ConfigError.single(
            "parse() takes a config string", expected="str", found=type(text).__name__
        )
    if len(text) > min(_CACHED_LENGTH, max_length()):  # (the limit may have been lowered)
        return build(parse_text(text))
    return _parse_cached(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> AdapterConfig:
    # Configs are immutable, so a repeated string can share one object.
    return build(parse_text(text))


def load(
    spec: Any, /, *, strict: bool = True, key: str | None = None, **overrides: Any
) -> AdapterConfig:
    """Resolve ``spec`` to a validated config and apply ``overrides`` (validated too).

    ``strict=False`` drops keys that this version does not know from dicts and files, issuing a
    :class:`~adapter_dsl.errors.ConfigWarning` for each (see :func:`load_lenient`). ``key``
    selects a dotted sub-table of a YAML or TOML file (``"tool.adapter"``).
    """
    dropped: list[Problem] = []
    config = _resolve(spec, strict=strict, dropped=dropped, key=key)
    for problem in dropped:
        warnings.warn(ConfigWarning(problem), stacklevel=2)
    if overrides:
        config = config.replace(**overrides)
    return config


def load_lenient(spec: Any, /, **overrides: Any) -> tuple[AdapterConfig, list[Problem]]:
    """Like ``load(spec, strict=False)``, returning the dropped keys as problems, not warnings."""
    dropped: list[Problem] = []
    config = _resolve(spec, strict=False, dropped=dropped)
    if overrides:
        config = config.replace(**overrides)
    return config, dropped


def _resolve(
    spec: Any, *, strict: bool, dropped: list[Problem], key: str | None = None
) -> AdapterConfig:
    if isinstance(spec, AdapterConfig):
        return spec
    from .integrations import omegaconf

    if omegaconf.is_container(spec):  # Hydra/OmegaConf: plain data, interpolations resolved
        spec = omegaconf.to_plain(spec)
    if isinstance(spec, Mapping):
        return config_from_dict(spec, strict=strict, dropped=dropped)
    if isinstance(spec, os.PathLike):
        return load_file(spec, strict=strict, dropped=dropped, key=key)
    if key is not None and not (isinstance(spec, str) and _looks_like_path(spec)):
        raise ConfigError.single(
            "key= selects a table of a YAML or TOML file", found=repr(spec)[:80], code="usage"
        )
    if isinstance(spec, str):
        if spec in IDENTIFIERS:
            return preset_config(spec)
        if _looks_like_path(spec):
            return load_file(spec, strict=strict, dropped=dropped, key=key)
        return parse(spec)
    raise ConfigError.single(
        "cannot load a config from this value",
        expected="an identifier, a config string, a dict, a path to a JSON file or a config object",
        found=f"{type(spec).__name__} {quote(spec)}"[:80],
    )


def _path_syntax(spec: str) -> bool:
    # Config strings never contain a path separator outside brackets, and never end in .json.
    if "[" in spec or "|" in spec:
        return False
    return spec.endswith((".json", ".yaml", ".yml", ".toml")) or "/" in spec or os.sep in spec


def _looks_like_path(spec: str) -> bool:
    if "[" in spec or "|" in spec:
        return False
    if _path_syntax(spec):
        return True
    try:
        return os.path.exists(spec)
    except (ValueError, OSError):  # e.g. an embedded NUL: not a path
        return False


# -- dicts -------------------------------------------------------------------------------------


_BOTTLENECK_ONLY = frozenset(BnConfig.model_fields) - {
    "leave_out",
    "dropout",
    "non_linearity",
    "init_weights",
    "init_weights_seed",
    "use_gating",
}
MAX_DEPTH = 32  # nesting of dicts and lists in a config dict; real configs need 4
# An int wider than this is larger than any float and than every bound of an integer field, and
# near Python's 4,300-digit limit it cannot be printed: refused before any message quotes it.
_MAX_INT_BITS = 1024


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    return False


def _huge_int(value: Any) -> tuple[str | int, ...] | None:
    """The path of the first int (value or key) too large to be valid anywhere, if any.
    ``value`` is nested at most MAX_DEPTH deep (checked first)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            return path
        if isinstance(item, Mapping):
            for k, v in item.items():
                if isinstance(k, int) and k.bit_length() > _MAX_INT_BITS:
                    return path
                stack.append((v, (*path, k if isinstance(k, str | int) else quote(k))))
        elif isinstance(item, list | tuple):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))
    return None


def config_from_dict(
    data: Any,
    cls: type[AdapterConfig] | None = None,
    *,
    strict: bool = True,
    dropped: list[Problem] | None = None,
) -> AdapterConfig:
    """A config from its ``to_dict()`` form or a saved-adapter envelope; strict types, no coercion.

    With ``cls`` the dict is validated against that class; otherwise the family is chosen by
    ``architecture`` and the result is the preset class that fits the values best (so a reloaded
    IA³ dict is an ``IA3Config``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError.single(
            "a config must be a JSON object",
            expected='an object such as {"architecture": "lora", "r": 8}',
            found=type(data).__name__,
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError.single(
            "config keys must be strings",
            expected="string keys (field names)",
            found=", ".join(quote(k) for k in bad_keys[:3]),
            code="type",
        )
    if _too_deep(data):
        raise ConfigError.single(
            f"the config is nested more than {MAX_DEPTH} levels deep",
            expected=f"at most {MAX_DEPTH} levels of objects and lists",
            code="too_deep",
        )
    huge = _huge_int(data)
    if huge is not None:
        raise ConfigError.single(
            "number too large",
            expected="a number that fits a 64-bit float (integer fields: at most 2**31 - 1)",
            found=f"an integer of more than {_MAX_INT_BITS} bits",
            code="too_large",
            path=huge,
        )
    data, prefix = _unwrap(data)
    if cls is None:
        _refuse_model_config(data)
    architecture = data.get("architecture")
    family = FAMILIES.get(architecture) if isinstance(architecture, str | None) else None
    if (
        cls is not None
        and "architecture" not in data
        and not issubclass(cls, BnConfig)
        and not set(data) & _BOTTLENECK_ONLY
    ):
        # Read as a given class, a partial dict without the key belongs to that class's family
        # (a bottleneck dict, which never has the key, is still recognised by its fields).
        family = cls._family_root or cls
    if family is None:
        names = [k for k in FAMILIES if k is not None]
        raise ConfigError(
            [
                Problem(
                    f"unknown architecture {quote(architecture)}",
                    Location(path=(*prefix, "architecture")),
                    expected="one of "
                    + ", ".join(repr(n) for n in names)
                    + ", or no key (bottleneck)",
                    found=quote(architecture),
                    suggestion=did_you_mean(architecture, names)
                    if isinstance(architecture, str)
                    else None,
                    code="unknown_architecture",
                )
            ]
        )
    target = cls or family
    if cls is not None and not issubclass(cls, family) and not issubclass(family, cls):
        raise ConfigError(
            [
                Problem(
                    f"a {architecture or 'bottleneck'} config cannot be read as {cls.__name__}",
                    Location(path=(*prefix, "architecture")),
                    expected=f"a dict of a {cls.__name__}",
                    found=repr(architecture),
                    code="wrong_class",
                )
            ]
        )
    fields = dict(data)
    if family is BnConfig:
        fields.pop("architecture", None)
    if target is ConfigUnion or (cls is not None and issubclass(cls, ConfigUnion)):
        return _union_from_dict(
            fields, target, prefix, strict=strict, dropped=dropped, specialise=cls is None
        )
    if not strict:
        fields = _drop_unknown(fields, target, prefix, dropped)
    try:
        config = target(**fields)
    except ConfigError as exc:
        raise ConfigError([p.prefixed(prefix) for p in exc.problems]) from None
    return config if cls is not None else _specialise(config)


# Keys of a transformers model's config.json that no adapter config has.
MODEL_CONFIG_KEYS = ("model_type", "architectures", "transformers_version", "vocab_size")


def _refuse_model_config(data: Mapping[str, Any]) -> None:
    """One clear problem for a model's config.json given instead of the adapter's config
    (rather than one unknown-key problem per model setting)."""
    found = [k for k in MODEL_CONFIG_KEYS if k in data]
    if "architecture" in data or "model_type" not in found or len(found) < 2:
        return
    raise ConfigError(
        [
            Problem(
                f"this looks like a model config ({', '.join(found[:2])}); give the adapter's "
                "config",
                Location(),
                expected="an adapter config (an object with 'architecture' and the method's "
                "fields) or a saved adapter's adapter_config.json",
                found="a transformers model config" + _model_named(data),
                suggestion="pass the adapter's adapter_config.json (or its directory), not the "
                "model's config.json",
                code="model_config",
            )
        ]
    )


def _model_named(data: Mapping[str, Any]) -> str:
    model_type = data.get("model_type")
    return f" of model_type {model_type!r}"[:60] if isinstance(model_type, str) else ""


def _unwrap(data: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str | int, ...]]:
    """Strip a ``$schema`` key and a saved adapter's envelope, applying its load-time fix-ups."""
    problems = _envelope_problems(data, ["$schema"])
    if "config" in data:
        problems += _envelope_problems(data, [k for k in _ENVELOPE_VALUES if k != "$schema"])
    if problems:
        raise ConfigError(problems)
    data = {k: v for k, v in data.items() if k != "$schema"}
    if "config" in data:
        # A saved adapter's adapter_config.json. Config dicts have no "config" field, so the key
        # alone identifies the envelope; other top-level keys (the reference's meta_dict
        # entries, e.g. "task") describe the adapter and are not part of its config.
        if isinstance(data["config"], str):
            return dict(_config_from_inner_string(data["config"]).to_dict()), ("config",)
        if not isinstance(data["config"], Mapping):
            raise ConfigError(
                [
                    Problem(
                        "the saved adapter's 'config' is not a config",
                        Location(path=("config",)),
                        expected="an object (a config's to_dict()) or a config string",
                        found=type(data["config"]).__name__,
                        code="type",
                    )
                ]
            )
        inner = dict(data["config"])
        inner_problems = _envelope_problems(inner, ["$schema"])
        if inner_problems:
            raise ConfigError([p.prefixed(("config",)) for p in inner_problems])
        version = data.get("version")
        inner = _legacy_fixups(inner, version if isinstance(version, str) else None)
        inner.pop("$schema", None)
        return inner, ("config",)
    if "peft_type" in data:
        # A PEFT adapter_config.json: converted (problems carry pointers into the PEFT dict).
        # The PEFT conversion reads configs through this module: it is bound late.
        from_peft = resolve("adapter_dsl.peft:from_peft")

        return dict(from_peft(data).to_dict()), ()
    return data, ()


def _config_from_inner_string(text: str) -> AdapterConfig:
    """An envelope's ``"config": "<string>"``: an identifier or a config string, never a path.

    Only a path given as the argument of ``load``/``load_file`` (or on the command line) is ever
    opened; a string found inside data is data, whatever it looks like.
    """
    if text in IDENTIFIERS:
        return preset_config(text)
    try:
        return parse(text)
    except ConfigError as exc:
        if _path_syntax(text):
            raise ConfigError(
                [
                    Problem(
                        "the saved adapter's 'config' names a file; a file named inside a "
                        "config is never opened",
                        Location(path=("config",)),
                        expected="the config itself: an object (a config's to_dict()), an "
                        "identifier or a config string",
                        found=repr(text)[:80],
                        suggestion="load that file by passing its path to load() instead",
                        code="path_in_data",
                    )
                ]
            ) from None
        raise ConfigError([p.prefixed(("config",)) for p in exc.problems]) from None


def _legacy_fixups(config: dict[str, Any], version: str | None) -> dict[str, Any]:
    """The reference's fix-ups for files written by older versions (see its load_adapter)."""
    if version is None and isinstance(config.get("non_linearity"), str):
        # Files without a version predate the rename of gelu (to gelu_new) in transformers.
        renames = {"gelu": "gelu_new", "gelu_orig": "gelu"}
        config["non_linearity"] = renames.get(config["non_linearity"], config["non_linearity"])
    old = version is not None and version.startswith("adapters.") and _older(version, (1, 1, 0))
    if old and config.get("architecture") == "lora":
        # Before 1.1.0 LoRA scaled by alpha instead of alpha/r; alpha=r reproduces that (an
        # absent r is the default one).
        config["alpha"] = config.get("r", LoRAConfig.model_fields["r"].default)
    if isinstance(config.get("configs"), list):
        config["configs"] = [
            _legacy_fixups(dict(c), version) if isinstance(c, Mapping) else c
            for c in config["configs"]
        ]
    return config


def _older(version: str, than: tuple[int, ...]) -> bool:
    try:
        parts = tuple(int(p) for p in version.removeprefix("adapters.").split(".")[:3])
    except ValueError:
        return False
    return parts < than


def _drop_unknown(
    fields: dict[str, Any],
    cls: type[AdapterConfig],
    prefix: tuple[str | int, ...],
    dropped: list[Problem] | None,
) -> dict[str, Any]:
    known = set(cls.model_fields) | {"architecture"} | cls._legacy_keys
    kept = {}
    for key, value in fields.items():
        if key in known:
            kept[key] = value
            continue
        if dropped is not None:
            dropped.append(
                Problem(
                    f"unknown key '{key}' was dropped",
                    Location(path=(*prefix, key)),
                    expected="a key of " + cls.__name__,
                    found=repr(value),
                    suggestion=cls.key_suggestion(key, sorted(known)),
                    code="dropped_key",
                )
            )
    return kept


def _union_from_dict(
    fields: dict[str, Any],
    cls: type[AdapterConfig],
    prefix: tuple[str | int, ...],
    *,
    strict: bool,
    dropped: list[Problem] | None,
    specialise: bool,
) -> AdapterConfig:
    extra = sorted(set(fields) - {"architecture", "configs"})
    problems = [
        Problem(
            f"unknown key '{k}' for a union" + ("" if strict else " was dropped"),
            Location(path=(*prefix, k)),
            expected="'architecture' and 'configs'",
            found=repr(k),
            code="unknown_key" if strict else "dropped_key",
        )
        for k in extra
    ]
    if not strict:
        if dropped is not None:
            dropped.extend(problems)
        problems = []
    members = fields.get("configs")
    if not isinstance(members, list | tuple):
        problems.append(
            Problem(
                "a union needs a list of configs",
                Location(path=(*prefix, "configs")),
                expected="a list of config objects",
                found=type(members).__name__ if members is not None else "nothing",
                code="missing" if members is None else "type",
            )
        )
        raise ConfigError(problems)
    if not members:
        problems.append(
            Problem(
                "a union needs at least one config",
                Location(path=(*prefix, "configs")),
                expected="a non-empty list of configs",
                found="[]",
                code="empty_union",
            )
        )
    configs: list[AdapterConfig] = []
    for i, member in enumerate(members):
        if isinstance(member, Mapping) and "$schema" in member:
            # The schema key names the file's schema, so it belongs on the top level only.
            problems.append(
                Problem(
                    "'$schema' belongs on the top level of the file, not in a union member",
                    Location(path=(*prefix, "configs", i, "$schema")),
                    expected="no '$schema' key in a member",
                    found=repr("$schema"),
                    code="unknown_key",
                )
            )
            continue
        try:
            configs.append(
                config_from_dict(member, strict=strict, dropped=dropped)
                if not isinstance(member, AdapterConfig)
                else member
            )
        except ConfigError as exc:
            problems.extend(p.prefixed((*prefix, "configs", i)) for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    if len(configs) == 1:
        # A one-member union (which the reference accepts) is that member.
        return configs[0]
    try:
        if issubclass(cls, ConfigUnion) and cls is not ConfigUnion:
            return cls(configs=configs)
        # Like single configs, a union dict comes back as the preset whose shape it has.
        return (union_class_of(configs) if specialise else ConfigUnion)(configs=configs)
    except ConfigError as exc:
        # Rules about one member are located at it already (/configs/<i>).
        raise ConfigError(
            [
                p.prefixed(prefix if p.location.path[:1] == ("configs",) else (*prefix, "configs"))
                for p in exc.problems
            ]
        ) from None


def _specialise(config: AdapterConfig) -> AdapterConfig:
    """The same values, as the preset class whose defaults they are closest to.

    Values never change; only the class does, so that a reloaded IA³ dict is an ``IA3Config``
    (the reference returns its family's base class).
    """
    from .canonical import diff

    family = type(config)
    candidates: dict[type[AdapterConfig], AdapterConfig] = {}
    for ident, preset in IDENTIFIERS.items():
        if issubclass(preset.cls, family) and preset.cls not in candidates and not preset.values:
            base = preset_config(ident)
            if base.architecture == config.architecture:
                candidates[preset.cls] = base
    if family is BnConfig:
        candidates[AdapterPlusConfig] = AdapterPlusConfig()
    if not candidates:
        return config
    best = min(candidates, key=lambda c: len(diff(config, candidates[c])))  # ties: table order
    return config if best is family else best(**config.field_values())


# -- files -------------------------------------------------------------------------------------


def load_file(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    dropped: list[Problem] | None = None,
    key: str | None = None,
) -> AdapterConfig:
    """A config from a JSON, YAML (``.yaml``/``.yml``) or TOML (``.toml``) file, or a saved
    adapter's directory (which holds ``adapter_config.json``); problems carry the file, line,
    column and JSON pointer. ``key`` (YAML/TOML) names a sub-table, dotted: ``"tool.adapter"``."""
    p = Path(path)
    if p.is_dir():
        p = p / "adapter_config.json"
    name = str(p)
    text = read_config_file(p, name)
    return load_config_text(text, file=name, key=key, strict=strict, dropped=dropped)


def read_config_file(p: Path, name: str) -> str:
    """The text of a regular file of at most :func:`~adapter_dsl.limits.max_length` bytes, or a
    ConfigError.

    Opened without blocking and checked after opening (no race with a swapped file), so that a
    FIFO, a device such as /dev/zero or a huge file is refused instead of read.
    """
    limit = max_length()
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ConfigError.single(f"no such config file: {name}", code="file_not_found") from None
    except (OSError, ValueError) as exc:  # ValueError: NUL in the name
        raise ConfigError.single(f"cannot read {name}: {exc}", code="file_unreadable") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError.single(
                f"{name} is not a regular file",
                expected="a JSON file (or a saved adapter's directory)",
                found="a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or special file",
                code="file_unreadable",
            )
        try:
            data = handle.read(limit + 1)  # bounded, whatever st_size claims
        except OSError as exc:
            raise ConfigError.single(f"cannot read {name}: {exc}", code="file_unreadable") from None
    if len(data) > limit:
        raise ConfigError.single(
            f"{name} is too large to be a config file",
            expected=f"at most {limit:,} bytes",
            found=f"{max(info.st_size, len(data)):,} bytes",
            suggestion=f"set {ENV_VAR} to allow larger files",
            code="file_too_large",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(f"cannot read {name}: {exc}", code="file_unreadable") from None


def load_config_text(
    text: str,
    *,
    file: str,
    key: str | None = None,
    strict: bool = True,
    dropped: list[Problem] | None = None,
) -> AdapterConfig:
    """A config from the text of ``file``, read as JSON, YAML or TOML by the file's suffix."""
    from .fileformats import FORMATS

    fmt = FORMATS.get(Path(file).suffix.lower(), "json")
    if fmt != "json":
        return load_document_text(text, fmt, file=file, key=key, strict=strict, dropped=dropped)
    if key is not None:
        raise ConfigError.single(
            "key= selects a table of a YAML or TOML file", found=file, code="usage"
        )
    return load_json_text(text, file=file, strict=strict, dropped=dropped)


def load_document_text(
    text: str,
    fmt: str,
    *,
    file: str = "<document>",
    key: str | None = None,
    strict: bool = True,
    dropped: list[Problem] | None = None,
) -> AdapterConfig:
    """A config from YAML or TOML text (``fmt``): a mapping, or (YAML) a config string; ``key``
    selects a dotted sub-table. Problems are located by line and column."""
    from .fileformats import line_col, parse_document, select

    doc = parse_document(text, fmt, file=file)
    data, prefix = select(doc, key, file=file)

    def relocate(problem: Problem) -> Problem:
        problem = problem.prefixed(prefix)
        span = doc.locate(problem.location.path, problem.code in ("unknown_key", "dropped_key"))
        if span is None:
            return problem.with_location(file=file)
        line, column = line_col(text, span[0])
        return problem.with_location(span=span, line=line, column=column, file=file)

    if isinstance(data, str):  # a config string (``adapter: lora[r=16]``)
        try:
            return parse(data)
        except ConfigError as exc:
            at = doc.locate(prefix, False)
            # Where the string's characters start: a plain scalar at once, a quoted one after
            # its quote; unknown when escapes make the text differ from the value.
            offset = (
                next((o for o in (at[0], at[0] + 1) if text[o : o + len(data)] == data), None)
                if at
                else None
            )
            if offset is None:
                raise exc.located(file=file) from None
            shifted = []
            for p in exc.problems:
                if p.location.span is not None:
                    start, end = (offset + i for i in p.location.span)
                    line, column = line_col(text, start)
                    p = p.with_location(span=(start, end), line=line, column=column)
                shifted.append(p.with_location(file=file))
            raise ConfigError(shifted, source=text) from None
    local: list[Problem] = []
    try:
        config = config_from_dict(data, strict=strict, dropped=local)
    except ConfigError as exc:
        raise ConfigError([relocate(p) for p in exc.problems], source=text) from None
    if dropped is not None:
        dropped.extend(relocate(p) for p in local)
    return config


def load_json_text(
    text: str,
    *,
    file: str = "<json>",
    strict: bool = True,
    dropped: list[Problem] | None = None,
    cls: type[AdapterConfig] | None = None,
) -> AdapterConfig:
    """A config from JSON text, with problems located by line and column (validated as ``cls``
    when given, as in :func:`config_from_dict`)."""
    limit = max_length()
    if len(text) > limit:
        raise ConfigError.single(
            f"the JSON text is too long ({len(text):,} characters)",
            expected=f"at most {limit:,} characters",
            suggestion=f"set {ENV_VAR} to allow longer input",
            code="too_long",
        ).located(file=file)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_json_int)
    except _HugeJSONNumber as exc:
        start = text.find(exc.digits)
        line, column = line_col(text, start)
        raise ConfigError(
            [
                Problem(
                    "number too large",
                    Location(
                        span=(start, start + len(exc.digits)), line=line, column=column, file=file
                    ),
                    expected="a number that fits a 64-bit float (integer fields: at most 2**31 - 1)",
                    found=f"an integer of {len(exc.digits):,} digits",
                    code="too_large",
                )
            ],
            source=text,
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                Problem(
                    f"invalid JSON: {exc.msg}",
                    Location(
                        span=(exc.pos, exc.pos + 1), line=exc.lineno, column=exc.colno, file=file
                    ),
                    code="json_syntax",
                )
            ],
            source=text,
        ) from None
    except RecursionError:
        raise ConfigError.single(
            "the JSON is nested too deeply to be a config",
            expected=f"at most {MAX_DEPTH} levels of objects and lists",
            code="too_deep",
        ).located(file=file) from None
    except _DuplicateJSONKey as exc:
        raise ConfigError.single(
            f"key {exc.key!r} appears twice in an object", code="duplicate_key"
        ).located(file=file) from None
    local: list[Problem] = []
    try:
        config = config_from_dict(
            data, None if cls is AdapterConfig else cls, strict=strict, dropped=local
        )
    except ConfigError as exc:
        raise ConfigError(locate_problems(exc.problems, text, file), source=text) from None
    if dropped is not None:
        dropped.extend(locate_problems(local, text, file))
    return config


class _HugeJSONNumber(ValueError):
    def __init__(self, digits: str) -> None:
        self.digits = digits
        super().__init__("number too large")


def _json_int(digits: str) -> int:
    # Refused before int() would raise past Python's digit limit (or spend time converting).
    if len(digits) > 310:  # beyond any float: valid nowhere in a config
        raise _HugeJSONNumber(digits)
    return int(digits)


class _DuplicateJSONKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateJSONKey(key)
        out[key] = value
    return out
