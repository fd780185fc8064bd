"""Fuzz the readers of user input: any bytes give a valid result or a UsageError, never another exception.

A UsageError is what the CLI turns into one `error:` line and exit code 2; any other exception
would be a crash (exit 1 with "rerun with --debug").
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tuneshift import config
from tuneshift.errors import UsageError
from tuneshift.kinds import KINDS
from tuneshift.rundir import read_jsonl
from tuneshift.stages.seeds import load_seeds

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4),
                           max_leaves=12)
jsonl_lines = st.lists(json_values.map(json.dumps) | st.text(max_size=40), max_size=6).map("\n".join)
toml_fragments = st.sampled_from(['[run]', '[teacher]', '[seeds]', '[selector]', '[expander]', 'rounds = 2',
                                  'seed = "x"', 'base = "m"', 'adapter = "a"', 'path = "s.jsonl"', 'prompts = []',
                                  'prompts = ["a", 1]', 'threshold = -1', 'use = 3', 'run = 1', '[[seeds]]',
                                  'x = {a = 1}', 'base = "\\u0000"', '= 1', 'a.b.c = 1', 'rounds = 1e400'])
toml_texts = st.lists(toml_fragments | st.text(max_size=30), max_size=10).map("\n".join)


def write(data: bytes, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as fh:
        fh.write(data)
    return Path(fh.name)


@FUZZ
@given(st.one_of(jsonl_lines.map(str.encode), st.binary(max_size=200)))
def test_read_jsonl_returns_rows_or_a_usage_error(data: bytes):
    path = write(data, ".jsonl")
    try:
        rows = read_jsonl(path, "input")
    except UsageError as exc:
        assert str(exc).startswith(f"input {path}") and "\n" not in str(exc)
    else:
        assert len(rows) <= data.count(b"\n") + data.count(b"\r") + 1
    finally:
        path.unlink()


@FUZZ
@given(st.one_of(jsonl_lines.map(str.encode), st.binary(max_size=200)), st.sampled_from([".jsonl", ".txt"]))
def test_seeds_are_prompts_or_a_usage_error(data: bytes, suffix: str):
    path = write(data, suffix)
    try:
        seeds = load_seeds(str(path), None)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert seeds and all(isinstance(s, str) and s == s.strip() and s for s in seeds)
        assert len(seeds) == len(set(seeds))
    finally:
        path.unlink()


@FUZZ
@given(st.one_of(toml_texts.map(str.encode), st.binary(max_size=200)))
def test_config_reader_returns_a_config_or_a_usage_error(data: bytes):
    path = write(data, ".toml")
    try:
        raw = config.load(path)
        config.validate_core(raw)
        for kind in KINDS:
            config.kind_section(raw, kind)
    except UsageError as exc:
        assert "\n" not in str(exc).strip()
    finally:
        path.unlink()


@FUZZ
@given(st.lists(st.text(max_size=30) | st.sampled_from(["run.seed=1", "run=2", "run.seed.x=1", "a.b=[1,",
                                                        "=1", "k=", "x.y={a=1}", "run.rounds=\"2\""]),
                max_size=5))
def test_overrides_apply_or_raise_a_usage_error(items: list[str]):
    raw = {"run": {"seed": 0}, "seeds": {"prompts": ["a"]}}
    try:
        out = config.apply_overrides(raw, items)
    except UsageError as exc:
        assert str(exc).startswith("--set ")
    else:
        assert isinstance(out, dict) and raw == {"run": {"seed": 0}, "seeds": {"prompts": ["a"]}}


def test_a_nul_byte_in_a_path_is_a_usage_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[teacher]\nbase = "m\\u0000x"\nadapter = "a"\n[seeds]\nprompts = ["p"]\n')
    try:
        config.load(path)
    except UsageError as exc:
        assert "teacher.base" in str(exc)
    else:
        raise AssertionError("a NUL byte in a path was accepted")


def test_deeply_nested_jsonl_line_is_a_usage_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    try:
        read_jsonl(path, "seeds")
    except UsageError as exc:
        assert "line 1" in str(exc)
    else:
        raise AssertionError("a 100000-deep line was read")
