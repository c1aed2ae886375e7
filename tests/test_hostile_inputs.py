"""Hostile input, by category: every one is refused by name before any job runs (or repaired), none
reaches the user as a traceback, and none loses finished work.

Categories (issue 13): config values (non-finite, floats for counts, time points the solver steps
cannot give, grids too large, duplicate axis values, resources, stability, names), config files
(duplicate keys, not a mapping, missing, broken YAML), which config a run means (--configfile),
CLI numbers, models used with data of another problem or unfinished or damaged, and data loss
(a damaged data set, a model overwritten, a deleted model). tests/test_fleet_workflow.py and
tests/test_failures.py hold the killed-run and failed-job scenarios.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, TINY, snakemake
from fhnkit.datasets import write_dataset
from fhnkit.plan import ConfigError, expand_study, load_config, validate_config
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training import train_model

BASE = yaml.safe_load(TINY.read_text())


def fhnkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fhnkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 with a message that names what is wrong, and no traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    for word in words:
        assert word in out, (word, out)


# --- config values: each refused with its key path and the reason -----------------------------------

def _set(path: str, value):
    def mutate(config):
        node = config
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return mutate


CONFIG_CASES = {
    "nan model parameter": (_set("model.k", float("nan")), "model.k", "not a finite number"),
    "infinite t_max": (_set("studies.B_S.t_max", float("inf")), "studies.B_S.t_max", "not a finite number"),
    "nan inside a list": (_set("studies.A_scarce.initial_state", [float("nan"), 0.0]), "initial_state[0]",
                          "not a finite number"),
    "float for a count": (_set("studies.B_S.train.n", 40.0), "studies.B_S.train.n", "not a whole number"),
    "fractional iterations": (_set("studies.C.training.iterations", 40.5), "training.iterations", "whole number"),
    "float batch size": (_set("studies.B_S.grid.batch_size", [32.0]), "grid.batch_size", "whole number"),
    "time points the steps cannot give": (_set("studies.B_S.times_per_trajectory", 12),
                                          "studies.B_S.times_per_trajectory", "multiple of 11"),
    "an iterator step off the stored steps": (_set("studies.C.itnn.dt", 1.5), "studies.C.itnn.dt",
                                              "multiple of the stored step"),
    "a depth typed as a width": (_set("studies.B_S.grid.layers", [16]), "studies.B_S.grid", "max_models"),
    "a grid too large to enumerate": (_set("studies.B_S.grid.layers", [40]), "studies.B_S.grid", "max_models"),
    "duplicate seeds": (_set("studies.B_S.grid.seeds", [0, 0]), "studies.B_S.grid.seeds", "more than once"),
    "duplicate layer configs": (_set("studies.C.grid.layer_configs", [["silu", 8], ["silu", 8]]),
                                "grid.layer_configs", "more than once"),
    "unknown t-test study": (_set("analysis.ttest_studies", ["nope"]), "analysis.ttest_studies", "nope"),
    "a data set larger than memory": (_set("studies.B_S.train.n", 100_000_000), "studies.B_S.train.n", "GiB"),
    "an unstable solver step": (_set("model.k", 1e30), "data_solver.dt", "stability bound"),
    "an unstable benchmark step": (_set("model.k", 100.0), "benchmark.dt", "stability bound"),
    "RK4 asked to run on the GPU": (_set("data_solver.backend", "cuda"), "data_solver.backend", "rk4"),
    "a negative model parameter": (_set("model.epsilon", -1.0), "model.epsilon", "minimum"),
    "an unknown key": (_set("studies.B_S.trian", {"n": 3}), "studies.B_S", "trian"),
    "a study named by a number": (lambda c: c["studies"].update({3: c["studies"].pop("C")}), "studies", "3"),
    "a study name too long for a file name": (lambda c: c["studies"].update({"S" * 301: c["studies"].pop("C")}),
                                              "studies", "301 characters"),
    "a study named as a directory of the run": (lambda c: c["studies"].update({"Figures": c["studies"].pop("C")}),
                                                "studies", "results/figures/"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_config_that_cannot_run_is_refused_by_key(case):
    mutate, key, reason = CONFIG_CASES[case]
    config = copy.deepcopy(BASE)
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert key in str(err.value) and reason in str(err.value), str(err.value)


@pytest.mark.parametrize("path", [REPO / "config" / "config.yaml", TINY], ids=["default", "tiny"])
def test_the_shipped_configs_pass(path):
    config = load_config(path)
    assert sum(len(expand_study(config, name)) for name in config["studies"]) > 0


# --- config files -----------------------------------------------------------------------------------

FILE_CASES = {
    "a key given twice": ("seed: 1\nseed: 2\nstudies: {}\n", ["'seed' is given twice", "lines 1 and 2"]),
    "a study given twice": (TINY.read_text() + "  C:\n    problem: C\n", ["'C' is given twice"]),
    "not a mapping": ("- 1\n- 2\n", ["a config is a mapping"]),
    "broken YAML": ("studies: {A: [\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_a_broken_config_file_is_refused_naming_the_file(tmp_path, case):
    text, words = FILE_CASES[case]
    path = tmp_path / "my.yaml"
    path.write_text(text)
    refused(fhnkit("validate", path), str(path), *words)


def test_a_binary_config_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_bytes(b"seed: 7\n\xff\xfe\x00binary")
    refused(fhnkit("validate", path), str(path), "not a text file in UTF-8", "0xff", "offset 8")


def test_a_binary_default_config_is_refused_by_the_workflow_naming_the_file(tmp_path):
    """`snakemake` with no --configfile reads config/config.yaml of its directory: fhnkit reads it first."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_bytes(b"\xff\xfe\x00binary")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
                           "--directory", str(tmp_path), "-n"], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "UnicodeDecodeError" not in out, out
    assert "config/config.yaml: not a text file in UTF-8 (byte 0xff at offset 0)" in out, out


def test_yaml_merge_keys_are_standard_yaml_and_accepted(tmp_path):
    """`<<: *anchor` merges a mapping; the keys the mapping writes itself override the merged ones (and are
    not 'given twice')."""
    tiny = TINY.read_text()
    text = tiny.replace("    training: {iterations: 40, validate_every: 20}\n",
                        "    training: &short {iterations: 40, validate_every: 20}\n", 1)
    text = text.replace("    training: {iterations: 20, validate_every: 10, weights: {data: 1.0e+39}}",
                        "    training:\n      <<: *short\n      iterations: 20\n      weights: {data: 1.0e+39}")
    assert "<<: *short" in text
    path = tmp_path / "merged.yaml"
    path.write_text(text)
    merged = load_config(path)["studies"]["diverges"]["training"]
    expected = load_config(TINY)["studies"]["diverges"]["training"] | {"validate_every": 20}  # from B_S's
    assert merged == expected


def test_a_missing_config_file_is_named(tmp_path):
    refused(fhnkit("validate", tmp_path / "none.yaml"), "none.yaml")


# --- which config a run means ----------------------------------------------------------------------

def _planned(stdout: str) -> dict[str, int]:
    stats = stdout[stdout.index("Job stats"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_a_configfile_runs_that_config_alone_and_validate_counts_what_runs(tmp_path):
    """From a checkout-like directory holding the default config, --configfile runs only my.yaml (Snakemake
    alone would merge it into the default), and `fhnkit validate` counts exactly the models it plans."""
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    mine = {"seed": 1, "fleet": 1, "studies": {"B_S": {  # a study name the default has too: nothing inherited
        "problem": "B", "t_max": 5, "times_per_trajectory": 11, "train": {"n": 10}, "val": {"n": 4},
        "grid": {"layers": [1], "layer_configs": [["tanh", 8], ["silu", 8]], "classes": ["ddnn"],
                 "batch_size": [8]}, "training": {"iterations": 10, "validate_every": 5}}}}
    (work / "my.yaml").write_text(yaml.safe_dump(mine))
    proc = snakemake(work, "-n", "--cores", "1", configfile=work / "my.yaml")
    planned = _planned(proc.stdout + proc.stderr)
    validate = fhnkit("validate", work / "my.yaml")
    assert validate.returncode == 0 and "models: 2" in validate.stdout, validate.stdout
    assert planned["train"] == 2 and planned["compile"] == 2, planned
    proc = snakemake(work, "-n", "--cores", "1", configfile=work / "config" / "config.yaml")
    assert _planned(proc.stdout + proc.stderr)["train"] > 50  # the default config itself still runs whole


def test_a_duplicate_key_stops_snakemake_before_any_job(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(TINY.read_text() + "  C:\n    problem: C\n")
    proc = snakemake(tmp_path, "-n", "--cores", "1", configfile=path, check=False)
    assert proc.returncode != 0 and "'C' is given twice" in proc.stderr, proc.stderr[-2000:]
    assert "Job stats" not in proc.stdout


@pytest.mark.parametrize("target, words", [
    ("results/NOPE/benchmark.json", ["no study 'NOPE'", "A_scarce"]),
    ("results/B_S/models/ddnn_tanh99_bs32_s0/metrics.json", ["no model 'ddnn_tanh99_bs32_s0'", "fhnkit grid"]),
])
def test_an_unknown_target_is_refused_listing_what_exists(tmp_path, target, words):
    proc = snakemake(tmp_path, "-n", "--cores", "1", target, check=False)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
    assert "KeyError" not in proc.stdout + proc.stderr


# --- CLI numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["simulate", "--u0", "0.5", "--w0", "0", "--dt", "0.5"], ["stability bound", "--dt"]),
    (["simulate", "--u0", "0.5", "--w0", "0", "--dt", "-0.01"], ["--dt", "> 0.0"]),
    (["simulate", "--u0", "nan", "--w0", "0"], ["--u0", "not a finite number"]),
    (["simulate", "--u0", "0.5", "--w0", "0", "--t-end", "inf"], ["--t-end", "finite"]),
    (["simulate", "--u0", "0.5", "--w0", "0", "--save-every", "0"], ["--save-every", ">= 1"]),
    (["simulate", "--u0", "0.5", "--w0", "0", "--k", "0"], ["--k", "> 0.0"]),
    (["simulate", "--u0", "0.5", "--w0", "0", "--t-end", "1", "--save-every", "7"], ["--save-every 7"]),
    (["bench", "solver", "--cells", "0"], ["--cells", ">= 1"]),
    (["bench", "solver", "--cells", "1.5"], ["--cells", "whole number"]),
    (["bench", "solver", "--repeats", "-1"], ["--repeats"]),
    (["bench", "solver", "--warmup", "-1"], ["--warmup"]),
    (["bench", "solver", "--threads", "0"], ["--threads"]),
    (["bench", "solver", "--gpu-cells", "0"], ["--gpu-cells"]),
    (["bench", "train", str(TINY), "--study", "B_S", "--iterations", "0"], ["--iterations"]),
])
def test_the_cli_refuses_numbers_it_cannot_use(args, words):
    refused(fhnkit(*args), *words)


# --- models and data that do not belong together ----------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished problem A model and data sets of problems A and B."""
    d = tmp_path_factory.mktemp("hostile_models")
    config = validate_config(BASE)
    data = {study: {split: d / f"{study}_{split}.parquet" for split in ("train", "val")}
            for study in ("A_scarce", "B_S")}
    for study, splits in data.items():
        for split, path in splits.items():
            write_dataset(config, study, split, path)
    spec = next(s for s in expand_study(config, "A_scarce") if s["class"] == "ddnn")
    spec["training"].update(iterations=10, validate_every=10)
    (d / "spec.json").write_text(json.dumps(spec))
    train_model(ModelSpec.from_mapping(spec), data["A_scarce"]["train"], data["A_scarce"]["val"], d / "model",
                progress=False)
    return d, data, spec


def test_a_model_is_refused_data_of_another_problem(trained):
    d, data, _ = trained
    refused(fhnkit("evaluate", "--model", d / "model", "--data", data["B_S"]["val"]), "problem A model",
            "problem B data", str(data["B_S"]["val"]))
    assert fhnkit("evaluate", "--model", d / "model", "--data", data["A_scarce"]["val"]).returncode == 0


def test_training_on_data_of_another_problem_is_refused(trained, tmp_path):
    d, data, _ = trained
    refused(fhnkit("train", "--spec", d / "spec.json", "--train", data["B_S"]["train"], "--val",
                   data["A_scarce"]["val"], "--out", tmp_path / "m", "--no-progress"), "problem B data")


def test_benchmarking_a_model_for_a_study_of_another_problem_is_refused(trained):
    d, data, _ = trained
    refused(fhnkit("bench", "network", "--config", TINY, "--study", "B_S", "--model", d / "model", "--data",
                   data["B_S"]["val"]), "problem A model", "study B_S is problem B")


@pytest.mark.parametrize("damage, words", [
    ("weights.pt", ["weights.pt is damaged"]),
    ("spec.json", ["spec.json is damaged"]),
    ("metrics.json", ["metrics.json is damaged"]),
    ("no metrics.json", ["its training never finished"]),
    ("no weights.pt", ["weights.pt is missing"]),
])
def test_a_damaged_or_unfinished_model_is_refused_naming_the_file(trained, tmp_path, damage, words):
    d, data, _ = trained
    model = tmp_path / "model"
    shutil.copytree(d / "model", model)
    if damage.startswith("no "):
        (model / damage[3:]).unlink()
    else:
        (model / damage).write_bytes((model / damage).read_bytes()[: 40])
    refused(fhnkit("evaluate", "--model", model, "--data", data["A_scarce"]["val"]), *words)


def test_train_never_overwrites_a_finished_model_unless_forced(trained):
    d, data, _ = trained
    before = hashlib.sha256((d / "model" / "weights.pt").read_bytes()).hexdigest()
    args = ["train", "--spec", d / "spec.json", "--train", data["A_scarce"]["train"], "--val",
            data["A_scarce"]["val"], "--out", d / "model", "--no-progress"]
    refused(fhnkit(*args), "already holds a finished model", "--force")
    assert hashlib.sha256((d / "model" / "weights.pt").read_bytes()).hexdigest() == before
    forced = fhnkit(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (d / "model" / "metrics.json").exists()


# --- nothing finished is lost -----------------------------------------------------------------------

SMALL = {"seed": 3, "fleet": 2, "data_solver": {"dt": 0.01}, "studies": {"S": {
    "problem": "B", "i_app": 0.0, "t_max": 5, "times_per_trajectory": 11, "train": {"n": 20}, "val": {"n": 6},
    "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn"], "batch_size": [16]},
    "training": {"iterations": 20, "validate_every": 10, "batch": {"physics": 16, "initial": 4}}}}}
SMALL_MODELS = ["results/S/models/ddnn_tanh8_bs16_s0/metrics.json", "results/S/models/pinn_tanh8_bs16_s0/metrics.json"]


def _digests(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern))}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "not Parquet", "no fhnkit metadata", "bytes changed mid-file"])
def test_a_damaged_data_set_is_made_again_byte_identical_and_its_models_are_kept(tmp_path, damage):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SMALL))
    snakemake(tmp_path, "--cores", "2", *SMALL_MODELS, configfile=tmp_path / "config.yaml")
    data = tmp_path / "results/S/data/train.parquet"
    original, models = data.read_bytes(), _digests(tmp_path, "results/S/models/*/*")
    if damage == "truncated":
        data.write_bytes(original[: len(original) // 2])
    elif damage == "not Parquet":
        data.write_text("hello")
    elif damage == "bytes changed mid-file":  # inside a data page: the footer and schema still read
        mangled = bytearray(original)
        mangled[len(original) // 2: len(original) // 2 + 8] = bytes(b ^ 0xFF for b in original[len(original) // 2:][:8])
        data.write_bytes(bytes(mangled))
        assert pq.read_schema(data).metadata
    else:
        pd.read_parquet(data).to_parquet(data)
    proc = snakemake(tmp_path, "--cores", "2", *SMALL_MODELS, configfile=tmp_path / "config.yaml")
    assert "making it again from the config" in proc.stderr and str(Path("results/S/data/train.parquet")) in proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr  # no model trained again
    assert data.read_bytes() == original
    assert _digests(tmp_path, "results/S/models/*/*") == models


@pytest.mark.slow
def test_a_deleted_model_comes_back_on_a_plain_rerun(tiny_run, tmp_path):
    """After a complete run, delete one model: a plain `snakemake` trains it (alone) and redoes what follows
    from it (its build, its study's benchmark, the tables), and trains no other model."""
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    gone = "results/B_S/models/ddnn_silu4-tanh8_bs32_s0"
    assert (work / gone / "metrics.json").exists()
    shutil.rmtree(work / gone)
    proc = snakemake(work, "-n", "--cores", "2")
    out = proc.stdout + proc.stderr
    planned = _planned(out)
    assert planned["train"] == 1 and f"{gone}/metrics.json" in out, out[-3000:]
    assert planned.get("train_fleet", 0) == 0 and planned["summarise"] == 1


# --- what is written is true ------------------------------------------------------------------------

def test_the_report_front_page_renders_for_runs_with_and_without_resampling():
    """The page is rendered as Snakemake renders it (Jinja with trim_blocks and lstrip_blocks, its category
    link targets appended, docutils): `3 Resampling` is a category only where a study resamples, and a
    link to a category that does not exist is an error on the page ("Unknown target name")."""
    from docutils.core import publish_parts

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    stages = ["0 Reproduction", "1 Training", "2 Accuracy", "3 Resampling", "4 Inference cost",
              "5 Summary and configuration"]

    class Run:
        config = None

    for config, categories in ((validate_config(BASE), stages),
                               (validate_config({**BASE, "studies": {"A": BASE["studies"]["A_scarce"]}}),
                                [c for c in stages if c != "3 Resampling"])):
        Run.config = config
        targets = "\n".join(f".. _{c}: javascript:app.showCategory('{c}')" for c in categories)
        text = env.from_string((REPO / "workflow/report/workflow.rst").read_text()).render(snakemake=Run)
        html = publish_parts(text + "\n\n" + targets + "\n", writer_name="html",
                             settings_overrides={"report_level": 2})["html_body"]
        assert "Unknown target name" not in html and "System Message" not in html, html
        for category in categories:
            assert f">{category}</a>" in html, (category, html)
        assert "rk4 at dt = 0.01" in html


def test_data_sets_beyond_the_free_disk_are_refused_or_warned(monkeypatch):
    """The estimate is rows x 64 bytes; the free space is made small here (the rule, not this disk, is tested)."""
    import collections
    import shutil as shutil_module

    config = copy.deepcopy(BASE)
    config["studies"]["B_S"]["train"]["n"] = 100_000  # 1.1 M rows: about 67 MiB uncompressed
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _: usage(1, 1, 10 * 2**20))
    with pytest.raises(ConfigError, match="GiB uncompressed"):
        validate_config(config)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _: usage(1, 1, 50 * 2**20))
    with pytest.warns(UserWarning, match="may fill the disk"):
        validate_config(config)
