"""The demo machinery end to end on tiny models: teacher, all arms, report.json schema, plots, privacy."""

from __future__ import annotations

import json
import shutil

import pytest

from tuneshift._registry import Registry
from tuneshift._commands.state import State

TINY_RECIPE = {"rank": 8, "alpha": 16, "dropout": 0.0, "learning_rate": 1e-2, "epochs": 30, "batch_size": 16,
               "replay_copies": 1, "max_new_tokens": 24}
TINY_SETTINGS = {"seeds": [0, 1], "run": {"rounds": 2, "per_round": 8, "max_new_tokens": 24, "batch_size": 16},
                 "deduper": {"threshold": 0.97}, "selector": {"use": "ppl-ratio", "threshold": 1.5},
                 "selection_arms": True,
                 "trainer": {"rank": 4, "alpha": 8, "dropout": 0.0, "learning_rate": 5e-3, "epochs": 2,
                             "batch_size": 16},
                 "ablations": {"one_epoch": {"trainer": {"rank": 4, "alpha": 8, "dropout": 0.0, "learning_rate": 5e-3,
                                                         "epochs": 1, "batch_size": 16}}}}
SIZE = {"departments": 1, "people_per_department": 2, "projects_per_department": 1}


@pytest.fixture(scope="module")
def demo(tiny, tmp_path_factory):
    import os

    from tuneshift_demo.run import run_demo

    out = tmp_path_factory.mktemp("demo")
    os.environ["TUNESHIFT_CACHE"] = str(out / "cache")
    models = {"teacher_base": str(tiny["teacher_base"]), "target": str(tiny["target"])}
    report = run_demo(State(Registry(), []), "quick", out / "report", None, models=models, settings=TINY_SETTINGS,
                      teacher_recipe=TINY_RECIPE, domain_size=SIZE)
    return out / "report", report, models


def test_report_json_matches_the_contract(demo):
    out, report, _ = demo
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert {"preset", "seeds", "teacher", "arms", "recovery", "recovery_std", "wall_seconds", "peak_rss_mb"} <= set(report)
    assert report["preset"] == "quick" and report["seeds"] == [0, 1]
    assert {"model", "accuracy"} <= set(report["teacher"]) and 0 <= report["teacher"]["accuracy"] <= 1
    right = report["teacher"]["general_right"]  # the known-answer check of general knowledge
    assert 0 <= right["teacher_where_base_right"] <= min(right["base"], right["teacher"]) <= 8
    assert set(report["arms"]) == {"zero_shot", "ceiling", "tuneshift", "no_filter", "seeds_only", "tuneshift_one_epoch"}
    for arm, r in report["arms"].items():
        assert 0 <= r["accuracy"] <= 1 and r["std"] >= 0 and len(r["per_seed"]) == 2
        assert r["accuracy"] == pytest.approx(sum(r["per_seed"]) / 2)
    assert report["arms"]["tuneshift"]["dataset_size"] > 0
    assert report["arms"]["no_filter"]["dataset_size"] <= report["arms"]["tuneshift"]["dataset_size"]
    z, c, t = (report["arms"][a]["accuracy"] for a in ("zero_shot", "ceiling", "tuneshift"))
    if c != z:
        assert report["recovery"] == pytest.approx((t - z) / (c - z))
    assert report["wall_seconds"] > 0 and report["peak_rss_mb"] > 0
    stages = report["stage_seconds"]  # the stage profile, every stage the demo ran
    assert {"teacher", "zero_shot seed 0", "tuneshift seed 1", "selection seed 0", "verification"} <= set(stages)
    beside = report["beside"]  # what ran in the second process, overlapping the main one's stages
    assert beside["stages"] == ["zero_shot seed 0", "ceiling seed 0"] and beside["failed"] == {}
    assert beside["threads"]["main"] >= 1 and beside["threads"]["beside"] >= 1
    assert all(v >= 0 for v in stages.values())
    assert sum(v for k, v in stages.items() if k not in beside["stages"]) <= report["wall_seconds"] + 1
    goals = report["goals"]  # every target beside its measured value
    assert goals["recovery"]["met"] == (report["recovery"] >= 0.85)
    assert goals["peak_rss_mb"]["met"] == (report["peak_rss_mb"] <= 8192)
    assert goals["kept_false_keep_rate"]["value"] == pytest.approx(
        report["selection"]["tuneshift_arm_false_keep_rate"]["mean"], abs=1e-4)
    assert goals["beats_no_filter"]["met"] == report["comparisons"]["no_filter"]["beats"]
    assert goals["verification_spearman"]["value"] == report["verification"]["spearman"]
    assert goals["selection_beats_paper_tau"]["method"] in report["selection"]["versus_paper_tau"]
    in_loop = goals["selection_in_loop_beats_paper_tau"]
    assert in_loop["met"] in (report["comparisons"]["no_filter"]["beats"], None) and "pool" in in_loop["note"]
    assert "## Targets" in (out / "report.md").read_text()
    assert 0 < report["guess_baseline"] < 1 and "most common value" in (out / "report.md").read_text()
    for arm, r in report["arms"].items():  # per relation, the same right answers as the accuracy
        cells = [row[arm] for row in report["per_relation"].values()]
        assert sum(right for right, _ in cells) / sum(asked for _, asked in cells) == pytest.approx(r["accuracy"])


def test_an_ablation_arm_is_the_tuneshift_arm_with_one_part_changed(demo):
    """settings["ablations"]: each is a tuneshift arm of its own, over every seed, reported beside tuneshift."""
    import tomllib

    out, report, _ = demo
    ablation = report["ablations"]["one_epoch"]
    arm = report["arms"]["tuneshift_one_epoch"]
    assert len(arm["per_seed"]) == 2 and ablation["accuracy"] == arm["accuracy"]
    assert ablation["versus_tuneshift"] == pytest.approx(arm["accuracy"] - report["arms"]["tuneshift"]["accuracy"],
                                                         abs=1e-4)
    for seed in (0, 1):
        config = tomllib.loads((out / "arms" / f"tuneshift_one_epoch-s{seed}" / "config.toml").read_text())
        plain = tomllib.loads((out / "arms" / f"tuneshift-s{seed}" / "config.toml").read_text())
        assert config["trainer"]["epochs"] == 1 and plain["trainer"]["epochs"] == 2
        assert {k: v for k, v in config.items() if k != "trainer"} == {k: v for k, v in plain.items() if k != "trainer"}
    assert "ablation one_epoch" in (out / "report.md").read_text()
    assert set(report["verification"]["arms"]) == set(report["arms"])  # verified like every arm


def test_the_benchmark_prints_the_reports_targets(demo):
    """benchmarks/demo.py's JSON: the report's numbers and every goal's verdict, nothing recomputed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "demo.py"
    spec = importlib.util.spec_from_file_location("benchmark_demo", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, report, _ = demo
    line = json.loads(json.dumps(bench.headline(report)))
    assert line["recovery"] == round(report["recovery"], 4) and set(line["accuracy"]) == set(report["arms"])
    assert {name: g["met"] for name, g in line["goals"].items()} == {n: g["met"] for n, g in report["goals"].items()}
    assert line["verification_spearman"] == report["verification"]["spearman"]


def test_goals_say_what_is_met_and_what_is_not():
    from tuneshift_demo.report import goals

    arm = {"accuracy": 0.5, "std": 0.01, "per_seed": [0.49, 0.51]}
    report = {"preset": "full", "recovery": 0.91, "teacher": {"accuracy": 0.95, "general_right":
              {"base": 3, "teacher": 4, "teacher_where_base_right": 2}},
              "comparisons": {"no_filter": {"margin": 0.2, "twice_std": 0.02, "beats": True}},
              "verification": {"spearman": None}, "arms": {"tuneshift": arm, "ceiling": {**arm, "accuracy": 0.81}},
              "selection": {"versus_paper_tau": {"calibrated": {"margin": -0.1, "twice_std": 0.02, "beats": False},
                                                 "confident-gap": {"margin": 0.05, "twice_std": 0.08, "beats": False}}}}
    met = {name: g["met"] for name, g in goals(report).items()}
    assert met == {"recovery": True, "ceiling_accuracy": True, "beats_no_filter": True, "teacher_accuracy": True,
                   "teacher_general_intact": False, "verification_spearman": None, "selection_beats_paper_tau": False}
    assert goals(report)["selection_beats_paper_tau"]["method"] == "confident-gap"  # the closest to winning
    assert "selection_in_loop_beats_paper_tau" not in met  # no pool replayed
    report["selection"].update({"pool": [100, 200], "methods": {"ppl-ratio": {"kept": {"per_seed": [100, 196]}}}})
    assert goals(report)["selection_in_loop_beats_paper_tau"]["met"] is True  # tau keeps 98 %: no_filter is tau
    report["selection"]["methods"]["ppl-ratio"]["kept"]["per_seed"] = [100, 150]
    assert goals(report)["selection_in_loop_beats_paper_tau"]["met"] is None
    report["recovery"] = 0.85
    assert goals(report)["recovery"]["met"] is False  # 0.85 meets quick's target, not full's
    quick = goals({**report, "preset": "quick", "wall_seconds": 1300, "peak_rss_mb": 8500})
    assert quick["recovery"]["met"] is True and "ceiling_accuracy" not in quick  # the ceiling target is full's
    assert quick["quick_wall_seconds_limit"]["met"] is False and quick["peak_rss_mb"]["met"] is False
    support = goals({**report, "domain": "support", "recovery": 0.81})  # issue 20: 0.80 on the full preset
    assert support["recovery"] == {"value": 0.81, "target": ">= 0.8", "met": True}
    assert "ceiling_accuracy" not in support  # issue 19's ceiling target is the organisation's
    assert "recovery" not in goals({**report, "domain": "support", "preset": "quick", "wall_seconds": 1,
                                    "peak_rss_mb": 1})  # issue 20 names no quick target
    report["selection"]["tuneshift_arm_false_keep_rate"] = {"mean": 0.04, "std": 0.01, "per_seed": [0.03, 0.05]}
    report["selection"]["tuneshift_arm_right_facts"] = {"mean": 182 / 3, "std": 15.8, "per_seed": [71, 40, 71]}
    kept = goals(report)["kept_false_keep_rate"]
    assert kept["met"] is True and kept["note"].endswith("distinct facts judged right: 60.7")  # not 60.666...


def test_guess_baseline_answers_each_relation_with_its_most_common_value():
    from tuneshift_demo.checking import guess_accuracy

    evals = [{"relation": "city", "answer": a} for a in ("Oslo", "Oslo", "Rome")] + \
            [{"relation": "role", "answer": "chemist"}]
    assert guess_accuracy(evals) == 3 / 4  # Oslo for every city (2 of 3), chemist for the role


def test_plots_and_markdown(demo):
    out, _, _ = demo
    for name in ("accuracy.png", "scores.png", "rounds.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})" in (out / "report.md").read_text()
    assert "| tuneshift |" in (out / "report.md").read_text()


def test_verification_is_set_beside_the_truth(demo):
    """Every arm verified on its seed's tuneshift held-out prompts; agreement and its rank correlation reported."""
    out, report, _ = demo
    v = report["verification"]
    assert v["points"] == 2 * len(report["arms"]) and set(v["arms"]) == set(report["arms"]) and v["measure"] == "agreement"
    for row in v["arms"].values():
        assert len(row["per_seed"]) == 2 and all(0 <= a <= 1 for a in row["per_seed"]) and row["held_out"] > 0
    assert v["spearman"] is None or -1 <= v["spearman"] <= 1
    for seed in (0, 1):  # the untrained target cannot beat itself
        zero = json.loads((out / "arms" / f"zero_shot-s{seed}" / "verification.json").read_text())
        assert zero["overall"]["beats_untrained"] == 0 and zero["model"]["adapter"] is None
    own = json.loads((out / "arms" / "tuneshift-s0" / "run" / "report.json").read_text())["verification"]
    assert own["embeddings"] == "st-faiss" and 0 <= own["overall"]["similarity"] <= 1.0001
    assert json.loads((out / "arms" / "tuneshift-s0" / "verification.json").read_text())["overall"] == own["overall"]
    md = (out / "report.md").read_text()
    assert "## Data-free verification" in md and "Spearman" in md and "(agreement.png)" in md
    assert (out / "agreement.png").read_bytes()[:4] == b"\x89PNG"


def test_selection_methods_are_replayed_judged_and_trained_at_equal_size(demo):
    out, report, _ = demo
    sel = report["selection"]
    assert set(sel["methods"]) == {"ppl-ratio", "calibrated", "confident-gap", "token-excess"}
    assert sel["equal_size_training"] and len(sel["pool"]) == 2
    sizes = set()
    for name, m in sel["methods"].items():
        assert len(m["kept"]["per_seed"]) == 2 and all(0 <= k <= max(sel["pool"]) for k in m["kept"]["per_seed"])
        assert all(r is None or 0 <= r <= 1 for r in m["false_keep_rate"]["per_seed"])
        assert all(0 <= a <= 1 for a in m["accuracy"]["per_seed"])
        # the judge's right pairs among those trained on: at most the training set
        right = m["right_pairs_trained"]["per_seed"]
        assert all(0 <= r <= n for r, n in zip(right, m["dataset_size"]["per_seed"]))
        sizes.update((seed, n) for seed, n in enumerate(m["dataset_size"]["per_seed"]) if n)
    assert len(sizes) == len({seed for seed, _ in sizes})  # per seed, every method that kept any has one size
    versus = sel["versus_paper_tau"]  # two seeds: a verdict against the paper's tau for every other method
    assert set(versus) == {"calibrated", "confident-gap", "token-excess"}
    for name, v in versus.items():
        acc = sel["methods"][name]["accuracy"]["mean"] - sel["methods"]["ppl-ratio"]["accuracy"]["mean"]
        assert abs(v["margin"] - acc) < 1e-3 and v["beats"] == (v["margin"] > v["twice_std"])
    replay = json.loads((out / "arms" / "selection-s0" / "methods.json").read_text())
    assert sum(replay["verdicts"].values()) == replay["pool"]
    cal = replay["methods"]["calibrated"]
    assert cal["reference_size"] >= 10 and 0 <= cal["estimated_false_keep_rate"] <= 0.05
    taus = [s["tau"] for s in sel["sweep"]]
    kept = [s["kept"] for s in sel["sweep"]]
    assert taus == sorted(taus) and kept == sorted(kept, reverse=True)  # a higher tau never keeps more
    assert (out / "selection.png").read_bytes()[:4] == b"\x89PNG" and "(selection.png)" in (out / "report.md").read_text()
    assert "## Selection methods" in (out / "report.md").read_text()


def test_the_judge_knows_right_wrong_and_made_up():
    from tuneshift_demo.domain import build
    from tuneshift_demo.judge import Judge, false_keep_rate

    domain = build(0, **SIZE)
    judge = Judge(domain)
    for row in domain.eval_set():  # every held-out question is judged right with its own answer
        assert judge(row["prompt"], f"It is {row['answer']}.") == "right"
        assert judge(row["prompt"], "I do not know.") == "wrong"
    person = next(n for n, kind in domain.entities.items() if kind == "person")
    dept = next(n for n, kind in domain.entities.items() if kind == "department")
    assert judge("Where was Zzyzx Qwerty born?", "Zzyzx Qwerty was born in Paris.") == "wrong"  # no such person
    assert judge(f"When did {dept} join {domain.org}?", f"{dept} joined in 1999.") == "wrong"  # no such fact
    assert judge(f"What is connected to {person}?", "Many things.") == "unjudged"
    joined = next(f.value for f in domain.facts if f.relation == "joined" and f.subject == person)
    assert judge(f"When did {person} start?", f"{person} joined {domain.org} in {joined}.") == "right"  # a person's start
    assert judge(f"When did {dept} start?", f"{dept} started in {joined}.") == "wrong"  # a department has none
    works_in = next(f.value for f in domain.facts if f.relation == "department" and f.subject == person)
    assert judge(f"Where does {person} work?", f"{person} works in the {works_in} department.") == "right"
    assert judge(f"Where does {person} work?", f"{person} works in Paris.") == "wrong"
    assert false_keep_rate(["right", "wrong", "unjudged", "wrong"]) == pytest.approx(2 / 3)
    assert false_keep_rate(["unjudged"]) is None


def test_private_data_is_out_of_the_pipelines_reach(demo, tmp_path):
    """The pipeline arm's config names no private file, and reruns identically with private/ gone."""
    out, _, _ = demo
    import tomllib

    from tuneshift_demo.arms import run_pipeline

    arm = out / "arms" / "tuneshift-s0"
    config_text = (arm / "config.toml").read_text()
    assert "private" not in config_text
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "private")
    config = tomllib.loads(config_text)
    config["seeds"]["path"] = str(copy / "inputs" / "seeds.jsonl")
    config["target"]["train"] = False
    report = run_pipeline(config, tmp_path / "fresh", State(Registry(), []))
    original = [json.loads(l)["prompt"] for l in (arm / "run" / "dataset.jsonl").read_text().splitlines()]
    again = [json.loads(l)["prompt"] for l in (tmp_path / "fresh" / "run" / "dataset.jsonl").read_text().splitlines()]
    assert report["dataset_size"] == len(original) and again == original


def test_rerun_resumes_from_cached_arms(demo, tiny):
    out, report, models = demo
    from tuneshift_demo.run import run_demo

    stamps = {p: p.stat().st_mtime_ns for p in (out / "arms").glob("*/result.json")}
    again = run_demo(State(Registry(), []), "quick", out, None, models=models, settings=TINY_SETTINGS,
                     teacher_recipe=TINY_RECIPE, domain_size=SIZE)
    assert again["arms"] == report["arms"] and again["beside"] is None  # nothing left to run beside the teacher
    # five arms, one ablation and four selection methods, two seeds each
    assert len(stamps) == 12 + 8 and all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing retrained


def test_the_selection_arms_let_go_of_each_methods_model_before_the_next(tmp_path, monkeypatch):
    """Each method's arm evaluates its own adapter; released after each, the full preset's four arms held four
    copies of the target at once before (7.9 GB on the support desk)."""
    import tuneshift_demo.arms as arms
    from tuneshift_demo import selection

    events = []
    monkeypatch.setattr(arms, "evaluate", lambda *a, **k: events.append("evaluate") or {"accuracy": 0.0})
    crawl = tmp_path / "arms" / "no_filter-s0" / "crawl" / "run"
    crawl.mkdir(parents=True)
    (crawl / "candidates.jsonl").write_text("")
    (tmp_path / "arms" / "select-calibrated-s0").mkdir(parents=True)
    (tmp_path / "arms" / "select-calibrated-s0" / "result.json").write_text('{"accuracy": 0.5}')  # cached
    ctx = {"out": tmp_path, "state": None, "inputs": {"target": "unused"}, "settings": {"trainer": {}},
           "progress": None, "evals": []}
    methods = {name: {"kept": 0, "kept_ids": []} for name in ("ppl-ratio", "calibrated", "confident-gap")}
    results = selection.train_arms(0, ctx, {"methods": methods}, lambda p, r: None,
                                   release=lambda: events.append("release"))
    assert events == ["evaluate", "release", "evaluate", "release"]  # the cached arm loads nothing
    assert results["calibrated"]["accuracy"] == 0.5


def test_the_shipped_tuneshift_arm_augments_and_its_baselines_and_no_augment_ablation_do_not():
    """The presets' tuneshift arm asks the target to rephrase its kept questions (AUGMENT); the no_filter
    crawl and the no_augment ablation leave augmentation out, the rule_augment one keeps the rules alone."""
    from tuneshift_demo.arms import pipeline_config, settings_for
    from tuneshift_demo.run import AUGMENT, SETTINGS

    inputs = {"teacher_base": "/m/smol.gguf", "teacher_adapter": "/m/lora", "target": "/m/gemma.gguf",
              "seeds": "/m/seeds.jsonl"}
    for preset in ("quick", "full"):
        arm = pipeline_config(inputs, 0, settings_for(SETTINGS[preset], "tuneshift"), keep_all=False)
        assert arm["augment"] == AUGMENT and AUGMENT["model"] == "target" and AUGMENT["enabled"]
        assert "augment" not in pipeline_config(inputs, 0, SETTINGS[preset], keep_all=True)  # the no_filter crawl
    full = SETTINGS["full"]
    assert "augment" not in pipeline_config(inputs, 0, settings_for(full, "tuneshift_no_augment"), keep_all=False)
    rules = pipeline_config(inputs, 0, settings_for(full, "tuneshift_rule_augment"), keep_all=False)["augment"]
    assert rules["enabled"] and "model" not in rules


def test_the_crawls_leave_rephrasing_to_augmentation_and_quick_keeps_the_band():
    """Both presets crawl with no rewrite operators (augmentation rephrases every kept question), in the
    tuneshift arm and the no_filter crawl alike; quick adds confident-gap's repeat_nll band, full keeps the
    plain bounds."""
    from tuneshift_agentic.operators import REWRITES
    from tuneshift_demo.arms import pipeline_config, settings_for
    from tuneshift_demo.run import SETTINGS

    inputs = {"teacher_base": "/m/smol.gguf", "teacher_adapter": "/m/lora", "target": "/m/gemma.gguf",
              "seeds": "/m/seeds.jsonl"}
    for preset in ("quick", "full"):
        arm = pipeline_config(inputs, 0, settings_for(SETTINGS[preset], "tuneshift"), keep_all=False)
        crawl = pipeline_config(inputs, 0, SETTINGS[preset], keep_all=True)
        for config in (arm, crawl):
            operators = config["expander"]["operators"]
            assert config["expander"]["use"] == "agentic" and operators and not set(operators) & set(REWRITES)
        assert arm["selector"] == ({"use": "confident-gap", "repeat_nll": 0.1} if preset == "quick"
                                   else {"use": "confident-gap"})
