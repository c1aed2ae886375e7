"""Reruns are exact (issue 23): after a finished run, one config edit makes the dry run plan exactly the
jobs whose outputs depend on the edited key, no fewer (a stale report) and no more (work done twice).

The edits walk the config's sections: every execution-only key (`fhnkit.plan.execution`), a data key, a
training key, a benchmark key and an analysis key, each on the finished tiny run of conftest.py (dry
runs only: the run is shared). tests/test_edit_then_run.py runs edits for real and compares the bytes
with clean runs of the edited configs.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from conftest import TINY, snakemake
from fhnkit.plan import layout
from fhnkit.plan.execution import TRAINING_EXECUTION_KEYS

pytestmark = pytest.mark.slow

STUDIES = ("A_scarce", "B_S", "C", "diverges")
# jobs of the whole run (no study wildcard) that follow from any model's or benchmark's change
SUMMARY_RULES = {"summarise", "benchmark_table", "analyse", "figures", "reproduction", "config_page", "all"}


def planned_jobs(workdir, config: dict, tmp_path) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run of `config` on the finished run in `workdir` plans."""
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(workdir, "--cores", "2", "-n", configfile=path).stdout
    jobs = []
    for block in re.split(r"^\[.*\]$", out, flags=re.M)[1:]:
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if rule is None:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = dict(p.split("=", 1) for p in wildcards.group(1).split(", ")) if wildcards else {}
        jobs.append((rule.group(1), pairs))
    return jobs


def edited(path: str, value, config=None) -> dict:
    """The tiny config (or `config`) with the dotted key `path` set to `value`."""
    config = copy.deepcopy(config or yaml.safe_load(TINY.read_text()))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def every_study(key: str, value) -> dict:
    config = yaml.safe_load(TINY.read_text())
    for name in STUDIES:
        config = edited(f"studies.{name}.training.{key}", value, config)
    return config


def reversed_keys(node):
    if isinstance(node, dict):
        return {k: reversed_keys(node[k]) for k in reversed(list(node))}
    return node


EXECUTION_EDITS = {
    "fleet: 8": edited("fleet", 8),
    "fleet: 1 (no fleets)": edited("fleet", 1),
    "data_solver.backend: cpu": edited("data_solver.backend", "cpu"),
    **{f"training.{key}": every_study(key, value) for key, value in
       {"threads": 2, "device": "cpu", "checkpoint_every": 7}.items()},
    "every mapping's keys in reverse order": reversed_keys(yaml.safe_load(TINY.read_text())),
}


def test_every_training_execution_key_is_edited():
    assert {name.removeprefix("training.") for name in EXECUTION_EDITS} >= set(TRAINING_EXECUTION_KEYS)


@pytest.mark.parametrize("name", list(EXECUTION_EDITS))
def test_an_execution_only_edit_plans_nothing(tiny_run, tmp_path, name):
    assert planned_jobs(tiny_run, EXECUTION_EDITS[name], tmp_path) == [], name


def studies_of(jobs) -> set[str]:
    return {wildcards["study"] for _, wildcards in jobs if "study" in wildcards}


def rules_of(jobs, study=None) -> set[str]:
    return {rule for rule, wildcards in jobs if study is None or wildcards.get("study") == study}


def test_a_training_edit_plans_that_studys_models_and_what_follows_only(tiny_run, tmp_path):
    jobs = planned_jobs(tiny_run, edited("studies.B_S.training.iterations", 30), tmp_path)
    assert studies_of(jobs) == {"B_S"}, jobs
    trained = {w["model"] for rule, w in jobs if rule == "train"}
    assert trained == {p.name for p in (tiny_run / "results/B_S/models").iterdir()}
    assert {w["model"] for rule, w in jobs if rule == "compile"} == trained
    assert rules_of(jobs, "B_S") >= {"train_fleet", "train", "compile", "benchmark", "train_resample_model",
                                     "select_high_error", "predictions_figure", "error_cuts"}
    assert "dataset" not in rules_of(jobs)
    assert rules_of(jobs, None) - rules_of(jobs, "B_S") <= SUMMARY_RULES | {"resampling_table"}


def test_a_data_edit_plans_that_studys_data_models_and_what_follows_only(tiny_run, tmp_path):
    jobs = planned_jobs(tiny_run, edited("studies.C.train.n", 30), tmp_path)
    assert studies_of(jobs) == {"C"}, jobs
    assert ("dataset", {"study": "C", "split": "train"}) in jobs
    assert {w["model"] for rule, w in jobs if rule == "train"} == {p.name for p in
                                                                    (tiny_run / "results/C/models").iterdir()}
    assert "cost_sweep" not in rules_of(jobs)


def test_a_benchmark_edit_plans_the_benchmarks_and_the_tables_after_them(tiny_run, tmp_path):
    jobs = planned_jobs(tiny_run, edited("benchmark.repeats", 2), tmp_path)
    benchmarked = {s for s in STUDIES if (tiny_run / layout.benchmark_record(s)).exists()}
    assert benchmarked and {w["study"] for rule, w in jobs if rule == "benchmark"} == benchmarked
    assert rules_of(jobs) >= {"benchmark", "benchmark_table", "summarise", "reproduction"}
    # nothing that follows the models only: no training, compile, data or per-study accuracy figure
    assert not rules_of(jobs) & {"train", "train_fleet", "compile", "dataset", "train_resample_model",
                                 "error_cuts", "predictions_figure", "rollout_figure", "error_maps"}, jobs


def test_an_analysis_edit_plans_the_figures_only(tiny_run, tmp_path):
    jobs = planned_jobs(tiny_run, edited("analysis.curves_per_class", 3), tmp_path)
    assert rules_of(jobs) == {"figures", "config_page", "reproduction", "all"}, jobs
