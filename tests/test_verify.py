"""Data-free verification: the measures themselves, the verify stage of a tiny run, and `tuneshift verify`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import TINY, run_cli, tiny_overrides

from tuneshift import _agreement as agree
from tuneshift._text import normalise

CONFIG = str(TINY / "config.toml")
FRACTIONS = ("agreement", "agreement_before", "exact", "exact_before", "beats_untrained")


# --- the measures --------------------------------------------------------------


def test_informative_weights_give_the_answers_template_no_credit():
    answers = ["Ana Vel works as a field botanist.", "Bo Rin works as a glass engineer.",
               "Cy Tam works as a lamp chemist."]
    weights = agree.informative_weights(answers)
    assert weights["works"] == 0.0 and weights["botanist"] > 0  # in every answer vs in one
    wrong_role = "Ana Vel works as a glass engineer."
    assert agree.content_agreement(answers[0], wrong_role, "Who is Ana Vel?") == pytest.approx(1 / 3)
    assert agree.content_agreement(answers[0], wrong_role, "Who is Ana Vel?", weights) == 0.0
    assert agree.content_agreement(answers[0], "A field botanist.", "Who is Ana Vel?", weights) == 1.0
    assert agree.content_agreement("works", "works", "q", weights) == 1.0  # nothing informative: exact decides


def test_content_agreement_rewards_the_facts_not_the_wording():
    prompt, teacher = "Who leads Project Osprey?", "Project Osprey is led by Fel Gor."
    assert agree.content_words(teacher, prompt) == {"led", "fel", "gor"}  # no function words, nothing asked
    assert agree.content_agreement(teacher, "It is led by Fel Gor, I think.", prompt) == 1.0
    assert agree.content_agreement(teacher, "Project Osprey is led by Mar Nev.", prompt) == pytest.approx(1 / 3)
    assert agree.content_agreement(teacher, None, prompt) == 0.0
    assert agree.content_agreement("Project Osprey.", "Osprey", prompt) == 0.0  # nothing new: exact decides
    assert agree.exact_agreement(teacher, "project osprey is LED by fel gor") == 1.0
    assert agree.exact_agreement(teacher, "Fel Gor leads it.") == 0.0


def test_entities_name_the_things_asked_about():
    assert agree.entities("Who leads Project Osprey?") == ["Project Osprey"]
    assert agree.entities("What is Fel Gor's job at Zarmar Dynamics?") == ["Fel Gor", "Zarmar Dynamics"]
    assert agree.entities("how many days are in a week?") == []


def test_rank_correlation():
    assert agree.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert agree.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert agree.spearman([1, 1, 1], [1, 2, 3]) is None
    assert agree.ranks([0.5, 0.1, 0.5]) == [2.5, 1.0, 2.5]
    assert 0 < agree.spearman([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) < 1


def test_regions_separate_what_differs():
    vectors = [[1.0, 0.1], [0.9, 0.0], [1.0, 0.05], [0.0, 1.0], [0.1, 0.9]]
    labels = agree.kmeans(vectors, 2, seed=0)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]
    named = [["Osprey"], ["Osprey", "Fel Gor"], ["Heron"], [], ["Osprey"]]
    groups = agree.group_by_entity(named, 2)
    assert groups[0] == groups[1] == groups[4] != groups[2] and groups[3] == groups[2]
    assert agree.label_of([named[i] for i in (0, 1, 4)]) == "Osprey, Fel Gor"


# --- the verify stage and command on the tiny example ----------------------------


@pytest.fixture(scope="module")
def finished_run(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "run"
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny))
    assert result.returncode == 0, result.stderr
    return out


def cache_rows(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_run_reports_a_sane_verification(finished_run):
    section = json.loads((finished_run / "report.json").read_text())["verification"]
    overall = section["overall"]
    assert overall["n"] > 0 and overall["n"] == section["held_out"]["answered"] <= section["held_out"]["drawn"]
    assert section["model"]["adapter"] == str((finished_run / "adapter").resolve())
    assert section["embeddings"] is None and "similarity" not in overall  # exact dedup has no embeddings
    for metrics in [overall, section["knowledge"], *section["regions"]]:
        for key in FRACTIONS:
            if metrics["n"]:
                assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
        if metrics["n"]:
            assert metrics["gap_after"] == pytest.approx(metrics["nll_after"] - metrics["nll_teacher"], abs=1e-3)
    assert sum(r["n"] for r in section["regions"]) == overall["n"]
    assert section["knowledge"]["n"] <= overall["n"]
    rows = [json.loads(line) for line in (finished_run / "verification.jsonl").read_text().splitlines()]
    assert len(rows) == overall["n"] and {r["region"] for r in rows} == {r["label"] for r in section["regions"]}
    assert sum(r["beats_untrained"] for r in rows) / len(rows) == pytest.approx(overall["beats_untrained"], abs=1e-4)
    seen = {normalise(json.loads(line)["prompt"]) for line in (finished_run / "candidates.jsonl").read_text().splitlines()}
    assert not seen & {normalise(r["prompt"]) for r in rows}  # never trained on, nor asked in any round
    assert "| **all held-out prompts** |" in (finished_run / "verification.md").read_text()
    assert (finished_run / "verification.png").read_bytes()[:4] == b"\x89PNG"


def test_verify_command_reuses_the_cache_and_repeats_itself(finished_run):
    before = json.loads((finished_run / "report.json").read_text())["verification"]
    rows = cache_rows(finished_run)
    result = run_cli("verify", str(finished_run))
    assert result.returncode == 0, result.stderr
    assert "agreement with the teacher" in result.stderr
    assert cache_rows(finished_run) == rows  # every model call came from the cache
    assert json.loads((finished_run / "report.json").read_text())["verification"] == before


def test_untrained_target_agrees_no_better_than_itself(finished_run):
    """The measure can fail: without an adapter nothing moved, so nothing beats the untrained target."""
    from tuneshift._commands.verify import verify_adapter
    from tuneshift._commands.state import State
    from tuneshift._registry import Registry

    overall = verify_adapter(State(Registry(), []), finished_run, None)["overall"]
    assert overall["beats_untrained"] == 0.0 and overall["gap_after"] == pytest.approx(overall["gap_before"], abs=1e-4)
    assert overall.get("gap_closed", 0.0) == pytest.approx(0.0, abs=1e-4)  # absent when there is no gap to close
    assert overall["agreement"] == overall["agreement_before"]


def test_verify_section_is_optional_and_free_to_change(finished_run, tiny, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    result = run_cli("run", CONFIG, "--out", str(copy), *tiny_overrides(tiny), "--set", "verify.enabled=false")
    assert result.returncode == 0, result.stderr  # resumes: [verify] is not part of the job's identity
    assert json.loads((copy / "report.json").read_text())["verification"] is None


@pytest.mark.parametrize("case", ["missing", "no candidates", "no adapter"])
def test_verify_refuses_what_is_not_a_finished_run(finished_run, tmp_path, case):
    target = tmp_path / "run"
    if case != "missing":
        shutil.copytree(finished_run, target)
        (target / ("candidates.jsonl" if case == "no candidates" else "adapter/adapter_config.json")).unlink()
        if case == "no adapter":
            shutil.rmtree(target / "adapter")
    result = run_cli("verify", str(target))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0]
