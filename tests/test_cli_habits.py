"""What a command-line user expects: config show, options in plugins --json, -q / -v, `-` for score's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

from conftest import ROOT, TINY, one_error_line, run_cli, tiny_overrides


def test_config_show_prints_every_default_and_the_chosen_implementations(tiny):
    result = run_cli("config", "show", str(TINY / "config.toml"), *tiny_overrides(tiny, **{"run.rounds": 5}))
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["run"]["rounds"] == 5 and shown["run"]["batch_size"] == 8  # set, and a default never written
    assert shown["verify"] == {"enabled": True, "size": 32, "regions": 4}
    assert shown["answerer"]["use"] == "hf-answerer" and shown["answerer"]["batch_size"] == 32
    assert shown["selector"] == {"use": "ppl-ratio", "mode": "fixed", "threshold": 1.5, "quantile": 0.5, "top_k": 8}
    assert shown["trainer"]["use"] == "peft-lora" and shown["trainer"]["rank"] == 4  # the config's, not the default


def test_config_show_follows_plugin_choices(tiny):
    result = run_cli("--plugin", "litellm-paraphrase", "config", "show", str(TINY / "config.toml"), "--json",
                     *tiny_overrides(tiny, **{"expander.model": "openai/gpt-4o-mini"}))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["expander"]["use"] == "litellm-paraphrase" and shown["expander"]["model"] == "openai/gpt-4o-mini"
    assert shown["teacher"]["finetuned"] is None  # JSON keeps unset keys


def test_config_show_refuses_a_bad_option_in_one_line(tiny):
    line = one_error_line(run_cli("config", "show", str(TINY / "config.toml"),
                                  *tiny_overrides(tiny, **{"selector.threshold": -1})))
    assert "selector: threshold -1.0 is out of range" in line


def test_plugins_json_carries_each_implementations_options_schema():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    lora = entries["peft-lora"]["options"]["properties"]
    assert lora["rank"]["default"] == 16 and lora["rank"]["type"] == "integer"
    assert "description" in entries["confident-gap"]["options"]["properties"]["max_nll"]


def test_global_flags_are_read_before_the_command_only():
    from tuneshift._cli import global_flag

    assert global_flag(["--plugin", "run", "-v", "run", "x"], "-v", "--verbose")  # a plugin may be named "run"
    assert global_flag(["--quiet", "demo"], "-q", "--quiet")
    assert not global_flag(["run", "config.toml", "-v"], "-v", "--verbose")  # the command's own argument


def test_quiet_shows_no_progress_bars_nor_warnings(tiny, tmp_path):
    quiet = run_cli("-q", "run", str(TINY / "config.toml"), "--out", str(tmp_path / "q"),
                    *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False}))
    assert quiet.returncode == 0 and quiet.stderr.strip().startswith("kept "), quiet.stderr[-2000:]
    assert len(quiet.stderr.strip().splitlines()) == 1  # the result line only
    loud = run_cli("run", str(TINY / "config.toml"), "--out", str(tmp_path / "loud"),
                   *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False}))
    assert "round 1" in loud.stderr and "ok" in loud.stderr  # the progress observer, when not quiet
    assert one_error_line(run_cli("-q", "run", str(tmp_path / "none.toml"))).endswith("no such file")


def test_score_reads_standard_input_and_writes_standard_output(tiny):
    pairs = "".join(json.dumps({"prompt": q, "response": a}) + "\n"
                    for q, a in [("Who leads Orion?", "Mara Quell."), ("Where is Vela?", "In Tarn.")])
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())",
                             "score", "--base", str(tiny["teacher_base"]), "--adapter", str(tiny["adapter"]),
                             "--input", "-", "--output", "-"], input=pairs, capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["Who leads Orion?", "Where is Vela?"]
    assert all(r["nll_finetuned"] > 0 and r["ppl_ratio"] > 0 for r in rows)
    assert "scored 2 pairs into standard output" in result.stderr
