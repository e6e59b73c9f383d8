"""YAML and TOML config files: their data, and where each value sits in the text.

Like :mod:`adapter_dsl.jsonpos` for JSON, this module knows text, not configs: it parses a
document safely and answers "which characters hold the value (or the key) at this path?", so
that a problem found later on plain data is shown at its file, line and column.

YAML is read with PyYAML's safe loader (plain data only: no tags that build objects) from its
node tree, which keeps positions; aliases are refused, as no config needs them and expanding
them is how small YAML files grow huge. TOML is read with the standard library's ``tomllib``;
positions come from a line scanner over keys and table headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError, Location, Problem, did_you_mean

__all__ = ["FORMATS", "Document", "dump_document", "parse_document", "select"]

Path = tuple[str | int, ...]
Span = tuple[int, int]

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}


@dataclass(frozen=True)
class Document:
    """Parsed data plus ``locate(path, key)``: the span of the value (or key) at ``path``."""

    data: Any
    locate: Callable[[Path, bool], Span | None]


def line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _syntax_error(
    fmt: Literal["yaml", "toml"], message: str, text: str, pos: int, file: str
) -> ConfigError:
    pos = max(0, min(pos, len(text)))
    line, column = line_col(text, pos)
    return ConfigError(
        [
            Problem(
                f"invalid {fmt.upper()}: {message}",
                Location(span=(pos, pos + 1), line=line, column=column, file=file),
                code="yaml_syntax" if fmt == "yaml" else "toml_syntax",
            )
        ],
        source=text,
    )


def parse_document(text: str, fmt: str, *, file: str) -> Document:
    """Parse ``text`` as ``"yaml"`` or ``"toml"``; syntax errors are located ConfigErrors."""
    parsers = {"yaml": _parse_yaml, "toml": _parse_toml}
    if fmt not in parsers:
        raise ValueError(f"unknown document format {fmt!r}")
    try:
        return parsers[fmt](text, file)
    except RecursionError:  # both parsers recurse into nested values: no config nests so deep
        raise ConfigError(
            [
                Problem(
                    f"the {fmt.upper()} is nested too deeply to be a config",
                    Location(file=file),
                    expected="at most a few levels of mappings and lists",
                    code="too_deep",
                )
            ]
        ) from None


def select(doc: Document, key: str | None, *, file: str) -> tuple[Any, Path]:
    """The value at a dotted ``key`` (``"tool.adapter"``) of the document, and its path."""
    if not key:
        return doc.data, ()
    path: tuple[str, ...] = tuple(key.split("."))
    node = doc.data
    for depth, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(path[:depth]) or "the top level"
            keys = list(node) if isinstance(node, dict) else []
            raise ConfigError(
                [
                    Problem(
                        f"no key '{key}' in {file}",
                        Location(path=path[:depth], file=file),
                        expected=f"a key '{part}' at {where}"
                        + (f" (there: {', '.join(map(str, keys[:8]))})" if keys else ""),
                        found="nothing" if isinstance(node, dict) else type(node).__name__,
                        suggestion=did_you_mean(part, [str(k) for k in keys]),
                        code="missing_key",
                    )
                ]
            )
        node = node[part]
    return node, path


def dump_document(data: Any, fmt: str, *, schema_ref: str | None = None) -> str:
    """``data`` as YAML or TOML text (TOML has no null: drop None values first), optionally
    with the comment that points editors at a JSON Schema (yaml-language-server / taplo)."""
    if fmt == "yaml":
        import yaml

        head = f"# yaml-language-server: $schema={schema_ref}\n" if schema_ref else ""
        return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if fmt == "toml":
        import tomli_w

        head = f"#:schema {schema_ref}\n" if schema_ref else ""
        return head + tomli_w.dumps(data)
    raise ValueError(f"unknown document format {fmt!r}")


# -- YAML --------------------------------------------------------------------------------------


MAX_FLOW_DEPTH = 64  # [ and { nesting; PyYAML's scanner slows down quadratically with depth


def _flow_depth_exceeded(text: str) -> int | None:
    """The offset where ``[``/``{`` nesting passes MAX_FLOW_DEPTH (quotes and comments skipped;
    a bracket inside a plain scalar counts too, which only errs on the safe side)."""
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return None
    depth, quote, prev = 0, "", "\n"
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and prev in " \t\n":
            end = text.find("\n", i)
            i = n if end < 0 else end
            c = "\n"
        elif c in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return i
        elif c in "]}":
            depth = max(0, depth - 1)
        prev = c
        i += 1
    return None


def _parse_yaml(text: str, file: str) -> Document:
    import yaml

    too_deep = _flow_depth_exceeded(text)
    if too_deep is not None:
        raise _syntax_error(
            "yaml", f"values nested more than {MAX_FLOW_DEPTH} levels deep", text, too_deep, file
        )
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise _syntax_error(
                    "yaml",
                    "aliases (*name) are not supported in config files; write the value out",
                    text,
                    event.start_mark.index,
                    file,
                )
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        parts = [exc.context, exc.problem] if exc.problem_mark else [exc.context]
        message = ": ".join(p for p in parts if p) or "cannot be read"
        raise _syntax_error("yaml", message, text, mark.index if mark else 0, file) from None
    except yaml.YAMLError as exc:  # e.g. a non-printable character, which carries no mark
        raise _syntax_error("yaml", str(exc).splitlines()[0], text, 0, file) from None
    if node is not None:
        _check_yaml_keys(node, text, file)

    def locate(path: Path, key: bool) -> Span | None:
        return _yaml_span(node, path, key) if node is not None else None

    return Document(data, locate)


def _check_yaml_keys(root: Any, text: str, file: str) -> None:
    import yaml

    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise _syntax_error(
                            "yaml",
                            f"key {k.value!r} appears twice in a mapping",
                            text,
                            k.start_mark.index,
                            file,
                        )
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_span(root: Any, path: Path, key: bool) -> Span | None:
    import yaml

    node, key_node = root, None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part)
                ),
                None,
            )
            if match is None:
                break
            key_node, node = match
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            key_node, node = None, node.value[part]
        else:
            break
    target = key_node if key and key_node is not None else node
    return target.start_mark.index, max(target.end_mark.index, target.start_mark.index + 1)


# -- TOML --------------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
# Possessive repetitions: a dotted key's parts are delimited, so giving characters back never
# finds another match, and a long line of blanks and dots cannot backtrack.
_KEY_LINE = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]++|\"[^\"]*+\"|'[^']*+')"
    r"(?:\s*+\.\s*+(?:[A-Za-z0-9_-]++|\"[^\"]*+\"|'[^']*+'))*+)\s*=\s*"
)
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'")


def _parse_toml(text: str, file: str) -> Document:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        pos = 0
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
            pos = starts[min(line, len(starts)) - 1] + column - 1
            message = message[: match.start()].strip()
        raise _syntax_error("toml", message, text, pos, file) from None
    entries = _toml_entries(text)

    def locate(path: Path, key: bool) -> Span | None:
        # The longest prefix of the path that a key line or a table header names.
        for n in range(len(path), 0, -1):
            spans = entries.get(tuple(path[:n]))
            if spans is not None:
                return spans[0] if key else spans[1]
        return None

    return Document(data, locate)


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _KEY_PART.findall(text))


def _toml_entries(text: str) -> dict[Path, tuple[Span, Span]]:
    """Path → (key span, value span) for every ``key = value`` line and table header."""
    out: dict[Path, tuple[Span, Span]] = {}
    table: Path = ()
    counts: dict[Path, int] = {}
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        header = _HEADER.match(body)
        if header:
            name = _key_parts(header.group(2))
            if header.group(1) == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
                table = (*name, index)
            else:
                table = name
            span = (pos + header.start(2), pos + header.end(2))
            for n in range(1, len(name) + 1):  # [tool.adapter] also locates /tool
                out.setdefault(name[:n], (span, span))
            out.setdefault(table, (span, span))
        else:
            m = _KEY_LINE.match(body)
            if m:
                full = (*table, *_key_parts(m.group(1)))
                key_span = (pos + m.start(1), pos + m.end(1))
                value = body[m.end() :].split(" #")[0].rstrip()
                value_span = (pos + m.end(), pos + m.end() + max(1, len(value)))
                out.setdefault(full, (key_span, value_span))
        pos += len(line)
    return out
