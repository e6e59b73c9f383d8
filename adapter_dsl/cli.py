"""The ``adapter-dsl`` command: validate, format, explain and convert adapter configs.

Run ``adapter-dsl --help`` (or ``python -m adapter_dsl --help``) for the commands. Only the
standard library is imported here at start-up; the config machinery loads when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ConfigError
    from .methods.base import AdapterConfig

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_EPILOG = """\
examples:
  adapter-dsl validate "lora[r=16, alpha=32]" adapter_config.json
  adapter-dsl validate --json configs/*.adapter.json
  adapter-dsl format "prefix_tuning[bottleneck_size=800]|parallel"     # -> mam
  adapter-dsl explain "unipelt[lora.r=4]"
  adapter-dsl convert "lora[r=16]" --output adapter_config.json
  adapter-dsl convert adapter_config.json                              # -> lora[r=16]
  adapter-dsl schema --output schemas

A SPEC is an identifier (lora), a config string (lora[r=16]|seq_bn), a path to a JSON file
(a config dict or a saved adapter's adapter_config.json), a JSON object ('{"architecture": ...}')
or '-' for standard input.

exit codes:
  0  success (every config valid)
  1  at least one config is invalid or cannot be read
  2  usage error (unknown command or option, missing argument)

Colour is used only on a terminal; set NO_COLOR=1 or pass --color never to turn it off.
"""


# -- output helpers ----------------------------------------------------------------------------


@dataclass
class _Style:
    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def error(self, text: str) -> str:
        return self._wrap("1;31", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def caret(self, text: str) -> str:
        return self._wrap("31", text)


def _style_for(stream: IO[str], choice: str) -> _Style:
    if choice == "always":
        return _Style(True)
    if choice == "never" or os.environ.get("NO_COLOR"):
        return _Style(False)
    isatty = getattr(stream, "isatty", None)
    return _Style(bool(isatty and isatty()) and os.environ.get("TERM") != "dumb")


def _shown(text: str) -> str:
    """User input echoed in a message, with control and bidi characters escaped."""
    from .errors import printable

    return printable(text)


def _json_text(data: Any, stream: IO[str] | None = None) -> str:
    """JSON output that is safe on a terminal and exact as data: characters that do not print
    (controls, bidi overrides, lone surrogates) are written as ``\\u`` escapes, the rest as they
    are where the destination can encode them (else everything non-ASCII is escaped)."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if not text.isprintable():
        # Outside strings the text has only printable characters and newlines, so each escape
        # lands inside a string and decodes to the very character it replaces.
        text = "".join(c if c.isprintable() or c == "\n" else _json_escape(c) for c in text)
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(data, indent=2, ensure_ascii=True)
    return text + "\n"


def _json_escape(c: str) -> str:
    code = ord(c)
    if code > 0xFFFF:  # a UTF-16 surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _render_error(err: ConfigError, style: _Style) -> str:
    """``str(err)`` (problems with the source line and carets), carets coloured."""
    out = []
    for line in str(err).splitlines():
        stripped = line.strip()
        out.append(style.caret(line) if stripped and set(stripped) == {"^"} else line)
    return "\n".join(out)


# -- resolving inputs --------------------------------------------------------------------------


@dataclass
class _Input:
    """One command-line SPEC, resolved: the config or the error, and how it was written."""

    arg: str
    config: AdapterConfig | None = None
    error: ConfigError | None = None
    text: str | None = None  # the config string, when it was one
    data: Any = None  # the JSON value, when it was a file or JSON on stdin
    kind: str = "string"  # "identifier", "string", "file", "json"
    dropped: list[Any] = field(default_factory=list)


def _read_stdin() -> str:
    from .limits import max_length

    return sys.stdin.read(max_length() + 1)  # one more than allowed: the limit then says so


def _resolve(arg: str, *, lenient: bool = False) -> _Input:
    from .errors import ConfigError
    from .loading import load_file, load_json_text
    from .registry import IDENTIFIERS

    item = _Input(arg)
    try:
        if arg == "-":
            text = _read_stdin()
            if text.lstrip().startswith("{"):
                item.kind = "json"
                item.data = _json_or_none(text)
                item.config = load_json_text(
                    text, file="<stdin>", strict=not lenient, dropped=item.dropped
                )
            else:
                item.kind, item.text = "string", text.strip()
                item.config = _load_value(item.text, lenient, item.dropped)
        elif arg.lstrip().startswith("{"):  # JSON given inline
            item.kind = "json"
            item.data = _json_or_none(arg)
            item.config = load_json_text(
                arg, file="<argument>", strict=not lenient, dropped=item.dropped
            )
        elif arg in IDENTIFIERS:
            item.kind, item.text = "identifier", arg
            item.config = _load_value(arg, lenient, item.dropped)
        elif _is_path(arg):
            item.kind = "file"
            if Path(arg).is_dir():  # a saved adapter's directory
                arg = str(Path(arg) / "adapter_config.json")
            try:
                item.data = _json_or_none(Path(arg).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                item.data = None
            item.config = load_file(arg, strict=not lenient, dropped=item.dropped)
        else:
            item.kind, item.text = "string", arg
            item.config = _load_value(arg, lenient, item.dropped)
    except ConfigError as exc:
        item.error = exc
    return item


def _load_value(spec: str, lenient: bool, dropped: list[Any]) -> AdapterConfig:
    from .loading import load, load_lenient

    if lenient:
        config, problems = load_lenient(spec)
        dropped.extend(problems)
        return config
    return load(spec)


def _is_path(arg: str) -> bool:
    if arg.endswith(".json") and "[" not in arg:
        return True
    if "[" in arg or "|" in arg:
        return False
    return os.path.sep in arg or os.path.isfile(arg) or os.path.isdir(arg)


def _json_or_none(text: str) -> Any:
    # Only a helper beside the loader, which reports what is wrong with the text.
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# -- commands ----------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .canonical import dumps

    items = [_resolve(a, lenient=args.lenient) for a in args.specs]
    invalid = sum(1 for i in items if i.error is not None)
    if args.json:
        results = []
        for i in items:
            entry: dict[str, Any] = {"input": i.arg, "valid": i.error is None}
            if i.config is not None:
                entry["config"] = dumps(i.config)
                entry["dict"] = i.config.to_dict()
            if i.error is not None:
                entry["problems"] = i.error.to_list()
            if i.dropped:
                entry["dropped"] = [p.to_dict() for p in i.dropped]
            results.append(entry)
        payload = {
            "valid": invalid == 0,
            "checked": len(items),
            "invalid": invalid,
            "results": results,
        }
        out.write(_json_text(payload, out))
        return EXIT_INVALID if invalid else EXIT_OK
    style = _style_for(out, args.color)
    estyle = _style_for(err, args.color)
    for i in items:
        if i.error is not None:
            err.write(f"{estyle.error('error')}: {_shown(i.arg)}\n")
            err.write(_indent(_render_error(i.error, estyle)) + "\n")
            continue
        for p in i.dropped:
            err.write(f"{estyle.bold('warning')}: {_shown(i.arg)}: {p.summary()}\n")
        if not args.quiet:
            assert i.config is not None
            out.write(f"{style.ok('ok')}: {_shown(i.arg)} {style.dim('->')} {dumps(i.config)}\n")
    if len(items) > 1 and not args.quiet:
        summary = f"{len(items) - invalid} valid, {invalid} invalid"
        (err if invalid else out).write(summary + "\n")
    return EXIT_INVALID if invalid else EXIT_OK


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def _fail(items: Sequence[_Input], err: IO[str], color: str) -> int:
    style = _style_for(err, color)
    for i in items:
        if i.error is not None:
            err.write(f"{style.error('error')}: {_shown(i.arg)}\n")
            err.write(_indent(_render_error(i.error, style)) + "\n")
    return EXIT_INVALID


def _cmd_format(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .canonical import dumps

    items = [_resolve(a) for a in args.specs]
    if any(i.error is not None for i in items):
        return _fail(items, err, args.color)
    for i in items:
        assert i.config is not None
        out.write(dumps(i.config) + "\n")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    item = _resolve(args.spec)
    if item.error is not None:
        return _fail([item], err, args.color)
    members = _explain(item)
    if args.json:
        from .canonical import dumps

        assert item.config is not None
        payload = {"config": dumps(item.config), "members": members}
        out.write(_json_text(payload, out))
        return EXIT_OK
    style = _style_for(out, args.color)
    out.write(_explain_text(item, members, style))
    return EXIT_OK


def _explain(item: _Input) -> list[dict[str, Any]]:
    """Per member: its class, the preset its defaults come from, and every field."""
    from .canonical import dumps
    from .methods.base import plain
    from .methods.union import ConfigUnion
    from .registry import IDENTIFIERS, preset_config

    config = item.config
    assert config is not None
    members = list(config.members())
    bases: list[tuple[str | None, AdapterConfig | None]] = []
    explicit: list[set[str] | None] = [None] * len(members)
    if item.text is not None:
        from .syntax.parser import parse_text

        tree = parse_text(item.text)
        written: list[tuple[str, Any]] = []  # (identifier, args) per written method
        for method in tree.methods:
            preset = IDENTIFIERS[method.name]
            base_cfg = preset_config(method.name)
            if issubclass(preset.cls, ConfigUnion):
                names = type(base_cfg).member_names  # type: ignore[attr-defined]
                for idx, sub in enumerate(base_cfg.members()):
                    keys = set()
                    for a in method.args:
                        head, dot, key = a.key.partition(".")
                        if not dot and a.key in type(sub).model_fields:
                            keys.add(a.key)
                        elif dot and (head == names[idx] or head == str(idx)):
                            keys.add(key)
                    written.append((f"{method.name}.{names[idx]}", (sub, keys)))
            else:
                written.append((method.name, (base_cfg, {a.key for a in method.args})))
        for idx, (ident, (base_cfg, keys)) in enumerate(written[: len(members)]):
            bases.append((ident, base_cfg))
            explicit[idx] = keys
    else:
        raw = item.data
        if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
            raw = raw["config"]
        raw_members: list[Any] = []
        if isinstance(raw, dict):
            raw_members = raw["configs"] if isinstance(raw.get("configs"), list) else [raw]
        for idx, m in enumerate(members):
            ident = dumps(m).split("[", 1)[0]
            bases.append((ident, preset_config(ident) if ident in IDENTIFIERS else None))
            if idx < len(raw_members) and isinstance(raw_members[idx], dict):
                explicit[idx] = set(raw_members[idx]) - {"architecture", "$schema"}
    result = []
    for idx, m in enumerate(members):
        member_ident, base = bases[idx] if idx < len(bases) else (None, None)
        fields = []
        for name, info in type(m).model_fields.items():
            if name == "architecture":
                continue
            value = plain(getattr(m, name))
            if base is not None and name in type(base).model_fields:
                default = plain(getattr(base, name))
            elif not info.is_required():
                default = plain(info.default)
            else:
                default = None
            given = explicit[idx]
            is_set = (name in given) if given is not None else value != default
            fields.append(
                {
                    "name": name,
                    "value": value,
                    "default": default,
                    "set": is_set,
                    "description": info.description or "",
                }
            )
        result.append(
            {
                "index": idx,
                "architecture": m.architecture,
                "class": type(m).__name__,
                "preset": member_ident,
                "config": dumps(m),
                "fields": fields,
            }
        )
    return result


def _explain_text(item: _Input, members: list[dict[str, Any]], style: _Style) -> str:
    from .canonical import dumps, format_value

    config = item.config
    assert config is not None
    lines = [f"{style.bold(dumps(config))}  ({type(config).__name__})"]
    if len(members) > 1:
        lines.append(f"union of {len(members)} methods")
    for m in members:
        lines.append("")
        head = f"{m['class']}" + (f", defaults of {m['preset']}" if m["preset"] else "")
        prefix = f"[{m['index']}] " if len(members) > 1 else ""
        lines.append(style.bold(f"{prefix}{m['config']}") + f"  ({head})")
        rows = [("field", "value", "default", "set")]
        for f in m["fields"]:
            rows.append(
                (
                    f["name"],
                    format_value(f["value"]),
                    format_value(f["default"]),
                    "yes" if f["set"] else "",
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        for n, r in enumerate(rows):
            text = "  ".join(r[c].ljust(widths[c]) for c in range(3)) + "  " + r[3]
            text = text.rstrip()
            if n == 0:
                text = style.dim(text)
            elif r[3]:
                text = style.bold(text)
            lines.append("  " + text)
    return "\n".join(lines) + "\n"


def _cmd_schema(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .schema import FILENAMES, KINDS, schema_text, write_schemas

    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    if args.check and args.output is None:
        err.write("error: --check compares files: it needs --output DIR\n")
        return EXIT_USAGE
    if args.output is None:
        if len(kinds) > 1:
            err.write("error: --kind all needs --output DIR\n")
            return EXIT_USAGE
        out.write(schema_text(kinds[0]))
        return EXIT_OK
    directory = Path(args.output)
    if args.check:
        stale = [
            str(directory / FILENAMES[k])
            for k in kinds
            if not (directory / FILENAMES[k]).is_file()
            or (directory / FILENAMES[k]).read_text(encoding="utf-8") != schema_text(k)
        ]
        for name in stale:
            err.write(f"stale: {name} (regenerate with: adapter-dsl schema --output {directory})\n")
        return EXIT_INVALID if stale else EXIT_OK
    for path in write_schemas(directory, kinds):
        out.write(f"wrote {path}\n")
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .canonical import dumps
    from .errors import ConfigError
    from .peft import from_peft, to_peft

    item = _resolve(args.spec)
    if isinstance(item.data, dict) and "peft_type" in item.data and args.model_type:
        # A PEFT config read against the given model type's module names.
        try:
            item.config, item.error = from_peft(item.data, args.model_type), None
        except ConfigError as exc:
            item.error = exc
    if item.error is not None:
        return _fail([item], err, args.color)
    assert item.config is not None
    to = args.to
    if to == "auto":
        to = "string" if item.kind in ("file", "json") else "json"
    if to == "peft":
        if not args.model_type:
            err.write("error: --to peft needs --model-type (e.g. bert, llama)\n")
            return EXIT_USAGE
        try:
            data = to_peft(item.config, args.model_type)
        except ConfigError as exc:
            item.error = exc
            return _fail([item], err, args.color)
        text = _json_text(data, out if args.output in (None, "-") else None)
    elif to in ("json", "adapters"):
        data = item.config.to_dict()
        if args.schema_ref:
            data = {"$schema": args.schema_ref, **data}
        text = _json_text(data, out if args.output in (None, "-") else None)
    else:
        text = dumps(item.config) + "\n"
    if args.output in (None, "-"):
        out.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        err.write(f"wrote {_shown(args.output)}\n")
    return EXIT_OK


# -- argument parsing --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with a hint to --help on usage errors (exit code 2)."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        message = _shown(message)  # it quotes the offending argument
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="adapter-dsl",
        description="Validate, format, explain and convert adapter configs "
        "(AdapterHub adapters compatible).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"adapter-dsl {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output: auto (only on a terminal, unless NO_COLOR is set), always, never",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog="example:\n  "
            + example
            + "\n\nexit codes: 0 success, 1 invalid config, 2 usage error",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add(
        "validate",
        "Check configs; print each one's canonical form, or its problems with their location.",
        'adapter-dsl validate "lora[r=16]" adapter_config.json',
    )
    p.add_argument(
        "specs", nargs="+", metavar="SPEC_OR_FILE", help="config strings, identifiers or JSON files"
    )
    p.add_argument(
        "--json", action="store_true", help="machine-readable output (structured problems)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="drop unknown keys of dicts and files with a warning instead of failing",
    )
    p.set_defaults(func=_cmd_validate)

    p = add(
        "format",
        "Print the canonical config string of each SPEC.",
        'adapter-dsl format "pfeiffer[reduction_factor=16]"',
    )
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(func=_cmd_format)

    p = add(
        "explain",
        "Show every field of the resolved config: value, default and whether it was set.",
        'adapter-dsl explain "mam[adapter.reduction_factor=4]"',
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_explain)

    p = add(
        "schema",
        "Print or write the JSON Schema files (config dicts and saved adapter files).",
        "adapter-dsl schema --output schemas",
    )
    p.add_argument("--kind", choices=("config", "saved-adapter", "all"), default=None)
    p.add_argument(
        "-o", "--output", metavar="DIR", help="write the files into DIR instead of printing"
    )
    p.add_argument(
        "--check", action="store_true", help="with --output: exit 1 if the files there are stale"
    )
    p.set_defaults(func=_cmd_schema)

    p = add(
        "convert",
        "Config string -> JSON (the reference's to_dict() shape), or JSON file -> config string.",
        'adapter-dsl convert "lora[r=16]" -o adapter_config.json',
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--to",
        choices=("auto", "json", "string", "peft", "adapters"),
        default="auto",
        help="output form; auto: strings and identifiers become JSON, JSON becomes a string; "
        "peft: a PEFT adapter_config.json (needs --model-type); adapters: the reference's "
        "JSON (also for PEFT input)",
    )
    p.add_argument(
        "--model-type",
        metavar="TYPE",
        help="model type (bert, llama, ...) whose module names PEFT configs use",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    p.add_argument(
        "--schema-ref",
        metavar="URI",
        help='add a "$schema" key with this URI to JSON output (for editors)',
    )
    p.set_defaults(func=_cmd_convert)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; returns the exit code (0 ok, 1 invalid config, 2 usage error)."""
    out = stdout if stdout is not None else _tolerant(sys.stdout)
    err = stderr if stderr is not None else _tolerant(sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    if args.command == "schema" and args.kind is None:
        args.kind = "all" if args.output is not None else "config"
    try:
        code: int = args.func(args, out, err)
    except BrokenPipeError:  # e.g. `adapter-dsl explain ... | head`
        return EXIT_OK
    except OSError as exc:
        err.write(f"error: {_shown(str(exc))}\n")
        return EXIT_INVALID
    return code


def _tolerant(stream: IO[str]) -> IO[str]:
    """The process's own stream, writing what its encoding cannot hold (a lone surrogate from
    the input, a non-UTF-8 terminal) as backslash escapes instead of raising."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    return stream


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
