"""Bad configs and seeds: one line, exit 2, nothing written; overrides and redaction."""

from __future__ import annotations

import pytest
from conftest import TINY, run_cli, tiny_overrides

from tuneshift import _config as config
from tuneshift._errors import UsageError
from tuneshift._inputs import load_seeds
from tuneshift._inputs import load_eval

GOOD = (TINY / "config.toml").read_text()


def run_config(tmp_path, tiny, text, *extra):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return run_cli("run", str(path), "--out", str(tmp_path / "out"), *tiny_overrides(tiny), *extra)


def assert_usage_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text, extra, fragment", [
    ("[run\nseed = 1", (), "TOML syntax error"),
    (GOOD + "\n[bogus]\nx = 1\n", (), "unknown key bogus"),
    (GOOD.replace("rounds = 2", "rounds = 2\ncolour = 1"), (), "unknown key run.colour"),
    (GOOD.replace("rounds = 2", 'rounds = "two"'), (), "run.rounds"),
    (GOOD.replace("rounds = 2", "rounds = 0"), (), "run.rounds"),
    (GOOD, ("--set", "selector.threshold=-1"), "out of range"),
    (GOOD, ("--set", "selector.bogus=1"), "unknown key selector.bogus"),
    (GOOD, ("--set", "trainer.target_modules=['lm_head']"), "lm_head"),
    (GOOD, ("--set", "run.target_size=2"), "smaller than the number of seeds"),
    (GOOD, ("--set", "selector.use=peft-lora"), "names a trainer, not a selector"),
    (GOOD, ("--set", "teacher.finetuned=/x"), "either adapter or finetuned"),
    (GOOD, ("--set", "target.model=/no/such/model"), "target.model = /no/such/model: no such file"),
    (GOOD, ("--set", "nonsense"), "expected KEY=VALUE"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, tiny, text, extra, fragment):
    result = run_config(tmp_path, tiny, text, *extra)
    assert_usage_error(result, fragment)
    assert not (tmp_path / "out" / "candidates.jsonl").exists()


def test_missing_config(tmp_path):
    assert_usage_error(run_cli("run", str(tmp_path / "nope.toml")), "no such file")


def test_output_that_is_a_file(tmp_path, tiny):
    (tmp_path / "out").write_text("precious")
    result = run_config(tmp_path, tiny, GOOD)
    assert_usage_error(result, "exists and is not a directory")
    assert (tmp_path / "out").read_text() == "precious"


@pytest.mark.parametrize("content, fragment", [
    ("", "no seed prompts"),
    ('{"prompt": "ok"}\n{"prompt": broken\n', "line 2: not valid JSON"),
    ('{"prompt": 3}\n', "line 1: 'prompt' is int, expected a string"),
    ('\n{"prompt": "ok"}\n\n[1, 2]\n', "line 4: expected a string"),
    ('{"prompt": "  "}\n', "empty prompt"),
])
def test_bad_seeds(tmp_path, content, fragment):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(content)
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        load_seeds(str(seeds), None)


def test_seeds_from_text_and_inline(tmp_path):
    text = tmp_path / "s.txt"
    text.write_text("first\n\nsecond\nfirst\n")
    assert load_seeds(str(text), None) == ["first", "second"]
    assert load_seeds(None, ["a", "b"]) == ["a", "b"]
    assert load_seeds(None, ['{"x"}']) == ['{"x"}']


def test_overrides_parse_toml_values():
    raw = config.apply_overrides({"run": {"seed": 0}}, ["run.seed=7", "expander.model=base", "a.b.c=[1, 2]",
                                                        'x.y="quoted"', "x.z=true"])
    assert raw["run"]["seed"] == 7
    assert raw["expander"]["model"] == "base"
    assert raw["a"]["b"]["c"] == [1, 2]
    assert raw["x"] == {"y": "quoted", "z": True}


def test_redaction_hides_secrets_not_token_counts():
    raw = {"expander": {"api_key": "sk-123", "model": "openai/x"}, "teacher": {"hf_token": "hf_abc"},
           "run": {"max_new_tokens": 64}, "extra": [{"password": "p"}]}
    red = config.redact(raw)
    assert red["expander"] == {"api_key": "***", "model": "openai/x"}
    assert red["teacher"]["hf_token"] == "***" and red["extra"][0]["password"] == "***"
    assert red["run"]["max_new_tokens"] == 64
    assert "sk-123" not in str(red) and raw["expander"]["api_key"] == "sk-123"


def test_relative_paths_resolve_against_the_config(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text('[teacher]\nbase = "m"\nadapter = "/abs/a"\n[seeds]\npath = "s.jsonl"\n')
    raw = config.load(path)
    assert raw["teacher"]["base"] == str(tmp_path / "sub" / "m")
    assert raw["teacher"]["adapter"] == "/abs/a"
    assert raw["seeds"]["path"] == str(tmp_path / "sub" / "s.jsonl")


CORE = {"teacher": {"base": "/m", "adapter": "/a"}, "seeds": {"prompts": ["p"]}}


@pytest.mark.parametrize("override, fragment", [
    ("run.seed=18446744073709551616", "run.seed: Input should be less than 18446744073709551616"),
    ("run.seed=-1", "run.seed: Input should be greater than or equal to 0"),
    ("run.rounds=inf", "run.rounds: Input should be a finite number"),
    ("run.max_new_tokens=nan", "run.max_new_tokens: Input should be a finite number"),
    ('teacher.base=""', "teacher.base: a path cannot be empty"),
    ('teacher.adapter=" "', "teacher.adapter: a path cannot be empty"),
    ('target.model=""', "target.model: a path cannot be empty"),
    ('seeds.path=""', "seeds.path: a path cannot be empty"),
    ('eval.path=""', "eval.path: a path cannot be empty"),
])
def test_core_values_are_checked(override, fragment):
    raw = config.apply_overrides(CORE, [override])
    if override.startswith("seeds."):
        del raw["seeds"]["prompts"]
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        config.validate_core(raw)


def test_the_largest_seed_torch_takes_is_valid():
    assert config.validate_core(config.apply_overrides(CORE, [f"run.seed={2**64 - 1}"])).run.seed == 2**64 - 1


def test_plugin_options_refuse_nan_and_infinity():
    from tuneshift_select.gap import RatioOptions

    for value in (float("nan"), float("inf"), float("-inf"), "nan"):
        with pytest.raises(ValueError, match="finite number"):
            RatioOptions.model_validate({"threshold": value})
    assert RatioOptions.model_validate({"threshold": 2.0}).threshold == 2.0


def test_trainer_seed_is_range_checked():
    """The trainer seeds torch with seed * 1000 + epoch: a seed of 2**64 failed only after the rounds."""
    from tuneshift_hf.training import LoRAOptions

    for value in (-1, 2**32, 2**64):
        with pytest.raises(ValueError, match="seed"):
            LoRAOptions.model_validate({"seed": value})
    assert LoRAOptions.model_validate({"seed": 2**32 - 1}).seed == 2**32 - 1


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_a_bom_and_crlf_change_nothing(tmp_path, bom, end):
    """A UTF-8 BOM (some editors write one) and CRLF line ends, in the config, the seeds and the eval file."""
    def write(name, lines):
        path = tmp_path / name
        path.write_bytes((("\ufeff" if bom else "") + end.join(lines) + end).encode())
        return path

    (tmp_path / "plain.toml").write_text(GOOD)
    assert config.load(write("c.toml", GOOD.splitlines())) == config.load(tmp_path / "plain.toml")
    assert load_seeds(str(write("s.jsonl", ['{"prompt": "first"}', '"second"', ""])), None) == ["first", "second"]
    assert load_seeds(str(write("s.txt", ["first", "", "second "])), None) == ["first", "second"]
    assert load_eval(str(write("e.jsonl", ['{"prompt": "q", "answer": "a"}']))) == [{"prompt": "q", "answer": "a"}]


def test_context_length_from_config_json_and_gguf(tiny, tmp_path):
    import gguf

    assert config.context_length(str(tiny["teacher_base"])) == 1024
    assert config.context_length(str(tmp_path)) is None  # no config.json: the model's own checks say so
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(["a", "bb", "ccc"])  # a string array before the key: skipped, not read as the key
    writer.add_token_scores([0.0, 1.0, 2.0])
    writer.add_context_length(321)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert config.context_length(str(path)) == 321
    (tmp_path / "cut.gguf").write_bytes(path.read_bytes()[:40])
    assert config.context_length(str(tmp_path / "cut.gguf")) is None
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + b"\xff" * 64)
    assert config.context_length(str(tmp_path / "junk.gguf")) is None
