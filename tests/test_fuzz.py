"""Fuzz the readers of user input: any bytes give a valid result or a UsageError, never another exception.

A UsageError is what the CLI turns into one `error:` line and exit code 2; any other exception
would be a crash (exit 1 with "rerun with --debug").
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import tempfile
from pathlib import Path

import tomli_w
from conftest import TINY, tiny_overrides
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tuneshift import _config as config
from tuneshift._errors import UsageError
from tuneshift._inputs import load_seeds
from tuneshift._registry import Registry
from tuneshift._commands.state import State
from tuneshift._rundir import read_jsonl
from tuneshift._runner import Run
from tuneshift._inputs import load_eval
from tuneshift.kinds import KINDS

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


# --- config values: NaN, infinities, huge integers, empty strings, in numeric and path keys ------------

NUMERIC_KEYS = ["run.seed", "run.rounds", "run.per_round", "run.target_size", "run.max_per_answer", "run.batch_size",
                "run.max_new_tokens", "verify.size", "verify.regions", "selector.threshold", "expander.temperature",
                "expander.max_new_tokens", "expander.positives", "trainer.learning_rate", "trainer.epochs"]
PATH_KEYS = ["teacher.base", "teacher.adapter", "target.model", "seeds.path", "eval.path", "expander.model"]
odd_values = (st.sampled_from([math.nan, math.inf, -math.inf, 2**64, 2**64 - 1, 2**63, -(2**63) - 1, 10**30, -1, 0,
                               1e308, -0.0, "", " ", "nan", "inf", ".", "~", "/", "teacher", "base", True])
              | st.floats() | st.integers() | st.text(max_size=12))
registry = functools.cache(Registry)


def toml_value(value: object) -> str:
    """`value` as a TOML literal for --set (nan, inf and integers of any size included)."""
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(NUMERIC_KEYS + PATH_KEYS), odd_values), min_size=1, max_size=3))
@example(values=[("teacher.base", "/\n")])  # a line break in a value once split the error line (CI, stop 32's run)
@example(values=[("expander.model", "0\n")])
@example(values=[("eval.path", "x\u2028")])
def test_odd_config_values_give_a_run_or_a_usage_error(tiny, tmp_path_factory, values):
    """Everything Run checks before the run directory is touched (config, paths, seeds, eval, plugin options,
    each implementation's check()): a valid run or one UsageError line, and nothing written either way."""
    out = tmp_path_factory.mktemp("fuzz") / "out"
    sets = tiny_overrides(tiny)
    overrides = [sets[i + 1] for i in range(0, len(sets), 2)] + [f"{k}={toml_value(v)}" for k, v in values]
    try:
        run = Run(TINY / "config.toml", out, overrides, State(registry(), []))
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:  # accepted: then every number means something and every path names something
        run.close()
        options = [run.cfg.model_dump()] + [impl.options.model_dump() for impl in run.impl.values()]
        assert all(math.isfinite(x) for x in floats_in(options)), options
        assert 0 <= run.cfg.run.seed < 2**64
        specs = (run.teacher.base, run.teacher.adapter, run.target.base, run.cfg.seeds.path, run.cfg.eval.path)
        assert all(path is None or path.strip() for path in specs), specs
    assert not out.exists()


def floats_in(value: object) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in floats_in(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in floats_in(v)]
    return [value] if isinstance(value, float) else []


# --- file contents: a BOM, CRLF or CR line ends, lone surrogates in seeds and eval files ---------------

prompt_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff"),
                      min_size=1, max_size=20)
SURROGATES = ["\\ud800", "\\udfff", "\\udc00x"]
PAIR = "\\ud83d\\ude00"  # an escaped pair is one character, not a surrogate


def expected_seeds(prompts: list[str]) -> list[str] | None:
    """What load_seeds gives for these prompts (None: a UsageError)."""
    seeds = [p.strip() for p in prompts]
    return list(dict.fromkeys(seeds)) if seeds and all(seeds) else None


@st.composite
def seed_files(draw):
    """(bytes of a seeds file, suffix, the prompts it holds, line number of its first lone surrogate or None)."""
    prompts = draw(st.lists(prompt_text, min_size=1, max_size=5))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = codecs.BOM_UTF8 if draw(st.booleans()) else b""
    if draw(st.booleans()):
        return bom + end.join(prompts).encode() + end.encode(), ".txt", prompts, None
    lines, bad = [], None
    for number, prompt in enumerate(prompts, 1):
        escaped = json.dumps(prompt, ensure_ascii=draw(st.booleans()))[1:-1]
        extra = draw(st.sampled_from(["", "", PAIR, *SURROGATES]))
        if extra in SURROGATES and bad is None:
            bad = number
        lines.append(json.dumps({"prompt": "@"})[:-3] + escaped + extra + '"}')
        prompts[number - 1] = prompt + ("\U0001f600" if extra == PAIR else "")
    return bom + end.join(lines).encode() + end.encode(), ".jsonl", prompts, bad


@FUZZ
@given(seed_files())
def test_bom_crlf_and_surrogates_in_seeds(sample):
    data, suffix, prompts, bad = sample
    path = write(data, suffix)
    try:
        wanted = expected_seeds([line for line in prompts if line.strip()] if suffix == ".txt" else prompts)
        try:
            seeds = load_seeds(str(path), None)
        except UsageError as exc:
            assert "\n" not in str(exc)
            if bad is not None:
                assert f"line {bad}: a lone surrogate" in str(exc), str(exc)
            else:
                assert wanted is None, str(exc)
        else:
            assert bad is None and seeds == wanted
    finally:
        path.unlink()


@FUZZ
@given(st.lists(st.tuples(prompt_text, prompt_text, st.sampled_from(["", "", PAIR, *SURROGATES])), min_size=1,
                max_size=4), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_bom_crlf_and_surrogates_in_the_eval_file(rows, end, bom):
    lines = [json.dumps({"prompt": p, "answer": a})[:-2] + extra + '"}' for p, a, extra in rows]
    path = write((codecs.BOM_UTF8 if bom else b"") + end.join(lines).encode() + end.encode(), ".jsonl")
    bad = next((i for i, (_, _, extra) in enumerate(rows, 1) if extra in SURROGATES), None)
    try:
        loaded = load_eval(str(path))
    except UsageError as exc:
        assert bad is not None and f"line {bad}: a lone surrogate" in str(exc), str(exc)
    else:
        assert bad is None
        assert [r["prompt"] for r in loaded] == [p for p, _, _ in rows]
        assert [r["answer"] for r in loaded] == [a + ("\U0001f600" if x == PAIR else "") for _, a, x in rows]
    finally:
        path.unlink()
