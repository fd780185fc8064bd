"""Every register_* hook: a plugin's implementation of each kind is listed, selected with --plugin, and used."""

from __future__ import annotations

import json

from conftest import ROOT, TINY, run_cli, tiny_overrides

ENV = {"TUNESHIFT_PLUGINS": "kinds_plugin", "PYTHONPATH": str(ROOT / "tests")}
CHOSEN = {"expander": "ask-again", "answerer": "shouting-answerer", "deduper": "first-words-dedup",
          "scorer": "tagging-scorer", "selector": "keep-all", "trainer": "one-epoch-lora"}
# the hooks these come through: register_expanders, register_answerers, register_dedupers,
# register_scorers, register_selectors, register_trainers


def test_every_kind_is_listed_through_its_hook():
    rows = {r["name"]: r for r in json.loads(run_cli("plugins", "--json", env=ENV).stdout)}
    for kind, name in CHOSEN.items():
        assert rows[name]["kind"] == kind and rows[name]["status"] == "ok" and rows[name]["builtin"] is False


def test_every_kind_is_selected_and_used(tiny, tmp_path):
    out = tmp_path / "run"
    flags = [arg for name in CHOSEN.values() for arg in ("--plugin", name)]
    result = run_cli(*flags, "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1}), env=ENV)
    assert result.returncode == 0, result.stderr
    run = json.loads((out / "run.json").read_text())
    assert {kind: p["name"] for kind, p in run["plugins"].items()} == CHOSEN
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    scored = [r for r in rows if r["fate"] != "duplicate"]
    assert all(r["fate"] == "kept" and r["reason"] == "kept by keep-all" for r in scored)       # selector
    assert all(r["response"] == r["response"].upper() for r in scored)                           # answerer
    assert all(r["extra"].get("tagged") is True for r in scored)                                 # scorer
    assert {r["origin"] for r in rows if r["round"] == 1} == {"ask-again"}                        # expander
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["trainer"] == "one-epoch-lora" and report["train"]["epochs"] == 1     # trainer
    assert (out / "adapter" / "adapter_config.json").is_file()


def test_deduper_plugin_marks_duplicates(tiny, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"prompt": "What is the capital of Zorbia?"}\n{"prompt": "What is the capital of Velmora?"}\n')
    out = tmp_path / "run"
    result = run_cli("--plugin", "first-words-dedup", "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "seeds.path": str(seeds)}),
                     "--set", "target.train=false", env=ENV)
    assert result.returncode == 0, result.stderr
    first = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()][:2]
    assert first[1]["fate"] == "duplicate" and first[1]["dup_of"] == "What is the capital of Zorbia?"
    assert first[1]["similarity"] == 0.5
