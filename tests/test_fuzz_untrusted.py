"""A bounded, deterministic fuzz campaign over every kind of untrusted input: config strings,
dicts, JSON text and files, and command-line arguments, salted with huge numbers, long unions,
deep nesting, runs of blanks, control characters and lone surrogates.

The contract: a config or a ConfigError (the CLI: exit 0, 1 or 2, never an exception), an
accepted config prints, hashes and serialises, and every error renders. Each example runs under
the generous hang guard. PEFT dicts are left to their own tests.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter_dsl import AdapterConfig, ConfigError, dumps, load
from adapter_dsl.cli import main
from adapter_dsl.loading import load_json_text
from adapter_dsl.registry import IDENTIFIERS, preset_config
from tests.guards import hang_guard

CAMPAIGN = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every machine and run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IDENTS = sorted(IDENTIFIERS)
FIELDS = sorted({f for p in IDENTIFIERS.values() for f in p.cls.model_fields})
ARCHITECTURES = ["lora", "prefix_tuning", "prompt_tuning", "reft", "union", "bottleneck", None]
HOSTILE_TEXT = [
    "\x1b[31m",
    "\x1b]0;t\x07",
    "\x9b",
    "\u202e",
    "\u2066",
    "\x00",
    "\ud800",
    "\udc80",
    "é",
]
BIG_INTS = [10**5000, -(10**5000), 10**400, 2**31, 2**31 - 1, 2**64, -1, 0]


def _big_int(index: int) -> int:
    return BIG_INTS[index]


BIG_FLOATS = [float("nan"), float("inf"), 1e308, -0.0, 5e-324]


def _no_slash(text: str) -> bool:
    # Strings with a path separator are read as file names (that is tested elsewhere).
    return "/" not in text and "\\" not in text and not text.endswith(".json")


junk = st.lists(
    st.characters(exclude_characters="/\\") | st.sampled_from(HOSTILE_TEXT), max_size=8
).map("".join)

# -- strings -----------------------------------------------------------------------------------

TOKENS = [
    *IDENTS,
    *FIELDS,
    *"[]{},=:|.'\"-+",
    "True",
    "None",
    "1e999",
    "9" * 5000,
    "0.5",
    "'q'",
    " " * 3000,
    "\t\n\r\f" * 50,
    *HOSTILE_TEXT,
]
token_strings = st.lists(st.sampled_from(TOKENS) | junk, max_size=25).map("".join)
unions = st.lists(st.sampled_from(IDENTS), min_size=1, max_size=400).map("|".join)
nested = st.integers(0, 60).map(lambda n: "lora[r=" + "[" * n + "]" * n + "]")
blank_runs = st.tuples(
    st.sampled_from(IDENTS),
    st.sampled_from([0, 50, 20_000]),
    st.sampled_from(["", ";", "(", "x", "]"]),
).map(lambda t: f"{t[0]}[" + " " * t[1] + t[2])
LITERALS = [
    "9" * 5000,
    "-" + "9" * 4400,
    "9" * 400,
    "2147483648",
    "1e999",
    "-0.0",
    "0",
    "16",
    "True",
    "None",
    "'q'",
    "['q', 'v']",
    "{'default': 16, '1': 8}",
    "{'default': " + "9" * 5000 + "}",
    "[" + "0, " * 200 + "]",
]
hostile_literal = junk.map(lambda t: repr(t))
blanks = st.sampled_from(["", " ", "\t\n", " " * 5000, "\r\f" * 2000])


@st.composite
def methods(draw: st.DrawFn) -> str:
    """One method as the grammar writes it, with keys of its class and hostile values."""
    ident = draw(st.sampled_from(IDENTS))
    names = sorted(IDENTIFIERS[ident].cls.model_fields)
    if not draw(st.integers(0, 3)):
        return ident
    args = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(names) | junk)
        value = draw(st.sampled_from(LITERALS) | hostile_literal)
        args.append(draw(blanks) + key + draw(blanks) + "=" + value + draw(blanks))
    return f"{ident}[{','.join(args)}]" + draw(
        st.sampled_from(["", "", ";", "(", " " * 3000 + ")"])
    )


structured = st.lists(methods(), min_size=1, max_size=4).map("|".join)
strings = (structured | structured | token_strings | unions | nested | blank_runs | junk).filter(
    _no_slash
)

# -- dicts -------------------------------------------------------------------------------------

scalars = (
    # By index: hypothesis prints its strategies, and a 5,000-digit int cannot be printed.
    st.integers(0, len(BIG_INTS) - 1).map(_big_int)
    | st.sampled_from(BIG_FLOATS)
    | st.integers(-5, 64)
    | st.booleans()
    | st.none()
    | st.sampled_from(["q", "v", "relu", "default", "all", "from_string", "learned"])
    | junk.filter(_no_slash)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["default", "0", "1"]) | junk, inner, max_size=4)
    ),
    max_leaves=12,
)
keys = (
    st.sampled_from([*FIELDS, "architecture", "config", "configs", "version", "$schema"]) | junk
).filter(lambda k: k != "peft_type")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def dicts(draw: st.DrawFn) -> dict[str, Any]:
    base = dict(preset_config(draw(st.sampled_from(IDENTS))).to_dict())
    kind = draw(st.sampled_from(["edit", "fresh", "union", "envelope", "deep"]))
    if kind == "fresh":
        base = {"architecture": draw(st.sampled_from(ARCHITECTURES))}
    if kind == "deep":
        base[draw(st.sampled_from(FIELDS))] = _deep(draw(st.integers(30, 3000)))
        return base
    base.update(draw(st.dictionaries(keys, values, max_size=2)))
    # Hostile values on the family's own fields, where they pass the key checks.
    names = sorted(set(FIELDS) & set(base) - {"architecture"})
    for name in draw(st.lists(st.sampled_from(names), max_size=3)) if names else []:
        base[name] = draw(values)
    if kind == "union":
        member = {
            "architecture": draw(st.sampled_from(["lora", "prefix_tuning"])),
            **draw(st.dictionaries(keys, values, max_size=2)),
        }
        return {"architecture": "union", "configs": [member] * draw(st.integers(0, 300)) + [base]}
    if kind == "envelope":
        inner = base if draw(st.booleans()) else draw(strings)
        return {
            "config": inner,
            "version": draw(st.sampled_from(["adapters.1.0.0", None, 5])),
            "name": "x",
        }
    return base


# -- JSON text and files -----------------------------------------------------------------------


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    data = draw(dicts())
    try:
        text = json.dumps(
            data, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
        )
    except (ValueError, RecursionError):  # too deep or an int json cannot print
        text = '{"architecture": "lora", "r": ' + "[" * 5000 + "]" * 5000 + "}"
    edit = draw(st.sampled_from(["none", "cut", "insert", "number", "deep", "blanks"]))
    at = draw(st.integers(0, len(text)))
    if edit == "cut":
        text = text[:at]
    elif edit == "insert":
        text = text[:at] + draw(junk) + text[at:]
    elif edit == "number":
        text = (
            '{"architecture": "lora", "r": '
            + "9" * draw(st.sampled_from([300, 311, 4300, 4301, 6000]))
            + "}"
        )
    elif edit == "deep":
        n = draw(st.sampled_from([10, 31, 33, 999, 6000]))
        text = '{"architecture": "lora", "r": ' + "[" * n + "]" * n + "}"
    elif edit == "blanks":
        text = text[:at] + " " * draw(st.sampled_from([0, 1, 20_000])) + text[at:]
    return text


def check_outcome(produce: Any) -> None:
    """``produce()`` gives a config or raises ConfigError; both are fully usable."""
    try:
        with hang_guard():
            config = produce()
    except ConfigError as err:
        text = str(err)
        json.dumps(err.to_list(), ensure_ascii=True)
        assert text.startswith("invalid adapter config")
        assert not [c for c in ("\x1b", "\x07", "\u202e", "\u2066") if c in text]
        return
    assert isinstance(config, AdapterConfig)
    hash(config), repr(config), str(config)
    json.dumps(config.to_dict(), ensure_ascii=True)
    assert load(dumps(config)) == config


@CAMPAIGN
@given(strings)
def test_fuzz_config_strings(text: str) -> None:
    check_outcome(lambda: load(text))


@CAMPAIGN
@given(dicts())
def test_fuzz_dicts(data: dict[str, Any]) -> None:
    check_outcome(lambda: load(data))


@CAMPAIGN
@given(json_texts())
def test_fuzz_json_text(text: str) -> None:
    check_outcome(lambda: load_json_text(text))


@CAMPAIGN
@given(json_texts(), st.sampled_from(["", "\ufeff"]), st.sampled_from(["strict", "surrogatepass"]))
def test_fuzz_json_files(text: str, bom: str, errors: str) -> None:
    try:
        data = (bom + text).encode("utf-8", errors=errors)
    except UnicodeEncodeError:
        data = (bom + text).encode("utf-8", errors="surrogatepass")  # invalid UTF-8 bytes
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "adapter_config.json")
        with open(path, "wb") as f:
            f.write(data)
        check_outcome(lambda: load(path))
        check_outcome(lambda: load(folder))


class _Terminal(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict")


arguments = (strings | json_texts()).filter(lambda a: not a.startswith("-") and "\x00" not in a)
commands = st.sampled_from(
    [
        ["validate"],
        ["validate", "--json"],
        ["validate", "--lenient", "-q"],
        ["format"],
        ["explain"],
        ["explain", "--json"],
        ["convert"],
        ["convert", "--to", "json"],
        ["convert", "--to", "string"],
        ["convert", "--to", "adapters"],
    ]
)


@CAMPAIGN
@given(
    commands,
    st.lists(arguments, min_size=1, max_size=3),
    st.sampled_from([[], ["--color", "always"]]),
)
def test_fuzz_command_line(command: list[str], specs: list[str], color: list[str]) -> None:
    if command[0] in ("explain", "convert"):
        specs = specs[:1]
    out, err = _Terminal(), _Terminal()
    with hang_guard():
        code = main([*command, *color, *specs], stdout=out, stderr=err)
    assert code in (0, 1, 2)
    out.flush(), err.flush()
    shown = out.buffer.getvalue() + err.buffer.getvalue()  # type: ignore[attr-defined]
    assert b"Traceback" not in shown
    raw = ["\x07", "\x9b", "\u202e", "\u2066", "\x1b]"] + (["\x1b"] if not color else [])
    assert not [c for c in raw if c.encode() in shown]  # colour codes are the only escapes
