"""Ablations as configuration (issue 24): variants of studies in the same DAG, and verdicts that say why."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY, snakemake
from fhnkit.analysis.reproduction import (
    DEFAULT,
    FINDINGS,
    NOT_REPRODUCED,
    REPRODUCED,
    UNDERPOWERED,
    Evidence,
    reproduction_table,
)
from fhnkit.analysis.reproduction_forest import forest_plot, forest_rows
from fhnkit.artifacts import read_parquet_meta
from fhnkit.datasets import write_dataset
from fhnkit.plan import expand_study, validate_config
from fhnkit.plan.config import ConfigError, load_config
from fhnkit.plan.grid import (
    data_determinants,
    data_job_config,
    data_shared_with,
    models_shared_with,
    resample_specs,
)

A = {"problem": "A", "t_max": 20, "val": {"n": 50},
     "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn"], "seeds": [0, 1]},
     "training": {"iterations": 100, "validate_every": 50}}
LONG = {"factor": "training length", "studies": ["dense"], "scale": {"training.iterations": 4}}


def _config(ablations: dict, **studies) -> dict:
    return validate_config({"studies": studies or {"dense": {**A, "train": {"n": 1000}}}, "ablations": ablations})


def test_an_ablation_makes_a_variant_study_that_differs_by_its_factor_only():
    config = _config({"long": LONG, "euler": {"factor": "data targets", "studies": ["dense"],
                                               "set": {"data_solver": {"method": "euler", "dt": 0.01}}}})
    assert list(config["studies"]) == ["dense", "dense__long", "dense__euler"]
    base, long, euler = (config["studies"][s] for s in ("dense", "dense__long", "dense__euler"))
    assert long["training"]["iterations"] == 400 and base["training"]["iterations"] == 100
    assert long["ablation"] == {"of": "dense", "name": "long", "factor": "training length",
                                "changes": "training.iterations x4"}
    assert {k: v for k, v in long.items() if k not in ("training", "ablation")} == \
        {k: v for k, v in base.items() if k != "training"}
    # same initial weights model by model; the data: the same for a training ablation, other targets for euler
    seeds = {s: [m["torch_seed"] for m in expand_study(config, s)] for s in config["studies"]}
    assert seeds["dense"] == seeds["dense__long"] == seeds["dense__euler"]
    strip = lambda d: {k: v for k, v in d.items() if k != "study"}  # noqa: E731
    assert strip(data_determinants(config, "dense")) == strip(data_determinants(config, "dense__long"))
    assert data_job_config(config, "dense__euler")["data_solver"]["method"] == "euler"
    assert data_job_config(config, "dense")["data_solver"]["method"] == "rk4"
    assert validate_config(config) == config  # validating again makes the same variants, no more


B = {"problem": "B", "i_app": 0.1, "t_max": 10, "times_per_trajectory": 11, "train": {"n": 12, "sampler": "lhs"},
     "val": {"n": 6}, "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn"]},
     "training": {"iterations": 100, "validate_every": 50}}


@pytest.mark.parametrize("study", [{**A, "train": {"n": 200}}, B], ids=["problem A", "problem B"])
def test_a_variant_that_leaves_its_data_alone_takes_its_studys_data_sets(tmp_path, study):
    euler = {"factor": "data targets", "studies": ["s"], "set": {"data_solver": {"method": "euler", "dt": 0.01}}}
    seeds = {"factor": "replicates", "studies": ["s"], "set": {"grid": {"seeds": [0, 1, 2]}}}
    config = _config({"long": {**LONG, "studies": ["s"]}, "euler": euler, "seeds": seeds}, s=study)
    assert [data_shared_with(config, s) for s in config["studies"]] == [None, "s", None, "s"]
    base, copied, solved, other = (tmp_path / f"{n}.parquet" for n in ("base", "copied", "solved", "other"))
    write_dataset(config, "s", "train", base)
    write_dataset(config, "s__long", "train", copied, source=base)
    write_dataset(config, "s__long", "train", solved)
    # the copy is byte for byte the set the variant would solve, its metadata naming the variant
    assert copied.read_bytes() == solved.read_bytes()
    assert read_parquet_meta(copied)["study"] == "s__long" and read_parquet_meta(base)["study"] == "s"
    # a set of other determinants (the Euler variant's) or of another split is refused, naming the file
    write_dataset(config, "s__euler", "train", other)
    for source, split in ((other, "train"), (base, "val")):
        with pytest.raises(ValueError, match=f"{source.name} is not the {split} set that study s__long shares"):
            write_dataset(config, "s__long", split, tmp_path / "refused.parquet", source=source)
    assert not (tmp_path / "refused.parquet").exists()


def test_a_variant_shares_the_models_its_factor_leaves_alone():
    resample = {"base": {"class": "itnn", "layers": [["tanh", 8]], "batch_size": 16}, "rule": "top_fraction",
                "q": 0.05, "per_point": 2, "spread": 0.02}
    study = {**B, "itnn": {"dt": 1.0}, "resample": resample,
             "grid": {**B["grid"], "classes": ["ddnn", "itnn"], "region": [False, True]}}
    config = _config({"seeds": {"factor": "replicates", "studies": ["s"], "set": {"grid": {"seeds": [0, 1]}}},
                      "q": {"factor": "high-error selection", "studies": ["s"], "set": {"resample": {"q": 0.1}}},
                      "budget": {"factor": "retraining budget", "studies": ["s"],
                                 "set": {"resample": {"iterations": 400}}},
                      "long": {**LONG, "studies": ["s"]}}, s=study)
    resampling = lambda c, s: list(resample_specs(c, s).values())  # noqa: E731
    grid = {s: {m["model"] for m in expand_study(config, s)} for s in config["studies"]}
    # replicates: the seeds both have; the other seed is trained
    seeds = models_shared_with(config, "s__seeds")
    assert set(seeds) == grid["s"] and set(seeds.values()) == {"s"} and len(grid["s__seeds"]) == 2 * len(seeds)
    # a resampling ablation: the grid without region terms and the base model; the region models train on
    # the variant's own high-error set and the retrained model is what varies
    for name in ("s__q", "s__budget"):
        shared = models_shared_with(config, name)
        assert set(shared) == {m for m in grid["s"] if not m.split("_")[0].endswith("a")}, shared  # ddnn, not ddnna
        assert models_shared_with(config, name, resampling) == {"resample-base": "s"}
    # a training ablation changes every model; a study of no ablation shares nothing
    assert models_shared_with(config, "s__long") == {} == models_shared_with(config, "s", resampling)


def test_a_shared_model_is_copied_with_the_variants_name(tmp_path):
    from fhnkit.cluster.handoff import take_shared_model
    from fhnkit.plan.model_spec import ModelSpec
    from fhnkit.training import train_model

    config = _config({"seeds": {"factor": "replicates", "studies": ["s"], "set": {"grid": {"seeds": [0, 1]}}}},
                     s={**A, "train": {"n": 50}, "training": {"iterations": 20, "validate_every": 10}})
    spec, variant = (next(m for m in expand_study(config, s) if m["class"] == "ddnn") for s in ("s", "s__seeds"))
    data = {split: tmp_path / f"{split}.parquet" for split in ("train", "val")}
    for split, path in data.items():
        write_dataset(config, "s", split, path)
    train_model(ModelSpec.from_mapping(spec), data["train"], data["val"], tmp_path / "s")
    metrics = take_shared_model(tmp_path / "s", tmp_path / "v", variant)
    assert metrics["study"] == "s__seeds" and metrics["shared_from"] == "s"
    assert metrics["config_hash"] == variant["config_hash"] != spec["config_hash"]
    for name in ("weights.pt", "spec.json"):
        assert (tmp_path / "v" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()
    assert read_parquet_meta(tmp_path / "v" / "history.parquet")["spec"]["study"] == "s__seeds"
    history = (pd.read_parquet(tmp_path / d / "history.parquet") for d in ("v", "s"))
    assert next(history).equals(next(history))
    other = {**variant, "model": "pinn_other"}
    with pytest.raises(ValueError, match="holds model .* not 'pinn_other'"):
        take_shared_model(tmp_path / "s", tmp_path / "w", other)
    with pytest.raises(ValueError, match="holds no finished model"):
        take_shared_model(tmp_path / "nothing", tmp_path / "w", variant)


@pytest.mark.parametrize("ablation, message", [
    ({"factor": "f", "studies": ["sparse"]}, "ablations.x.studies: 'sparse' is not a study"),
    ({"factor": "f", "studies": ["dense"], "scale": {"training.epochs": 2}}, "training.epochs is not a numeric"),
    ({"factor": "f", "studies": ["dense"], "scale": {"training.iterations": 0}}, "ablations.x.scale.training"),
    ({"factor": "f", "studies": ["dense"], "set": {"training": {"iters": 3}}}, "made by ablations.x"),
    ({"factor": "f", "studies": ["dense"], "set": {"data_solver": {"dt": 0.3}}}, "studies.dense__x.data_solver.dt"),
    ({"studies": ["dense"]}, "'factor' is a required property"),
])
def test_a_wrong_ablation_is_refused_naming_the_key(ablation, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _config({"x": ablation})


def _models(study: str, cls: str, errors) -> list[dict]:
    return [{"study": study, "model": f"{cls}_{i}", "class": cls, "status": "ok", "mean_err": e, "region": False,
             "windows": 1, "depth": 2, "neurons": 16, "iter_time_s": 1e-3} for i, e in enumerate(errors)]


def _rows(table: pd.DataFrame, key: str) -> list[dict]:
    return table[table["key"] == key].to_dict("records")


def test_the_verdict_says_which_factor_turns_it(tmp_path):
    config = _config({"long": LONG, "more_seeds": {"factor": "replicates", "studies": ["dense"],
                                                    "set": {"grid": {"seeds": [0, 1, 2, 3]}}}})
    rng = np.random.default_rng(1)
    noise = lambda n: np.exp(rng.normal(0, 0.1, n))  # noqa: E731
    summary = pd.DataFrame(  # by default DDNN is 3x worse; trained 4x longer, the two classes agree
        _models("dense", "ddnn", 3e-3 * noise(8)) + _models("dense", "pinn", 1e-3 * noise(8))
        + _models("dense__long", "ddnn", 1e-3 * noise(8)) + _models("dense__long", "pinn", 1e-3 * noise(8))
        + _models("dense__more_seeds", "ddnn", 3e-3 * noise(8)) + _models("dense__more_seeds", "pinn", 1e-3 * noise(8)))
    table = reproduction_table(Evidence(summary, config))
    dense = _rows(table, "a_dense")
    assert [r["ablation"] for r in dense] == [DEFAULT, "long", "more_seeds"]
    assert [r["verdict"] for r in dense] == [NOT_REPRODUCED, REPRODUCED, NOT_REPRODUCED]
    assert dense[0]["why"].startswith("Reproduced under training length (training.iterations x4), not reproduced by "
                                      "default: that factor turns the verdict")
    assert "no difference is left, its interval holding 1" in dense[0]["why"]
    assert 2.5 < dense[0]["effect"] < 3.5 and dense[0]["ci_low"] < dense[0]["effect"] < dense[0]["ci_high"]
    assert 0.8 < dense[1]["effect"] < 1.25 and np.isfinite(dense[0]["detectable"])
    assert all(r["study"] == "dense" for r in dense)
    # the other findings see the run's own studies only: the variants are not more Problem A studies
    assert not (table["study"].str.contains("__")).any()

    path = tmp_path / "forest.png"
    forest_plot(table, path)
    assert path.stat().st_size > 10_000 and len(forest_rows(table)) >= 3


def test_no_factor_turns_it_and_the_sentence_says_so():
    config = _config({"long": LONG})
    rng = np.random.default_rng(2)
    summary = pd.DataFrame(
        _models("dense", "ddnn", 3e-3 * np.exp(rng.normal(0, 0.1, 8)))
        + _models("dense", "pinn", 1e-3 * np.exp(rng.normal(0, 0.1, 8)))
        + _models("dense__long", "ddnn", 4e-3 * np.exp(rng.normal(0, 0.1, 8)))
        + _models("dense__long", "pinn", 1e-3 * np.exp(rng.normal(0, 0.1, 8))))
    (default, long) = _rows(reproduction_table(Evidence(summary, config)), "a_dense")
    assert default["verdict"] == long["verdict"] == NOT_REPRODUCED
    assert default["why"].startswith("No ablation turns the verdict: not reproduced by default and under every "
                                     "factor tried (training length), so the evidence says the finding does not hold")
    assert "the difference grows" in default["why"]


def test_the_sentence_names_every_factor_that_turns_it_and_an_effect_that_reverses():
    longer = {**LONG, "scale": {"training.iterations": 16}}
    seeds = {"factor": "replicates", "studies": ["dense"], "set": {"grid": {"seeds": [0, 1, 2, 3]}}}
    short = {**LONG, "scale": {"training.iterations": 0.5}}
    config = _config({"long": LONG, "longer": longer, "more_seeds": seeds, "short": short})
    rng = np.random.default_rng(3)
    noise = lambda n: np.exp(rng.normal(0, 0.1, n))  # noqa: E731
    summary = pd.DataFrame(  # DDNN 3x worse by default, as good trained longer, 3x better with more seeds, 2x
        # worse trained half as long
        _models("dense", "ddnn", 3e-3 * noise(8)) + _models("dense", "pinn", 1e-3 * noise(8))
        + _models("dense__long", "ddnn", 1e-3 * noise(8)) + _models("dense__long", "pinn", 1e-3 * noise(8))
        + _models("dense__longer", "ddnn", 1e-3 * noise(8)) + _models("dense__longer", "pinn", 1e-3 * noise(8))
        + _models("dense__more_seeds", "ddnn", 1e-3 * noise(16))
        + _models("dense__more_seeds", "pinn", 3e-3 * noise(16))
        + _models("dense__short", "ddnn", 2e-3 * noise(8)) + _models("dense__short", "pinn", 1e-3 * noise(8)))
    default, *_ = _rows(reproduction_table(Evidence(summary, config)), "a_dense")
    assert default["why"].startswith("Reproduced under training length (training.iterations x4), training length "
                                     "(training.iterations x16), not reproduced by default: each of these turns")
    seeds_part = default["why"].split("replicates (")[1]
    assert "the effect reverses" in seeds_part and "grows" not in seeds_part, default["why"]
    assert "training.iterations x4): reproduced, x" in default["why"] and "no difference is left" in default["why"]
    assert default["why"].endswith("the difference shrinks."), default["why"]  # x0.5: DDNN 2x worse, not 3x


def test_groups_too_small_to_detect_the_thesis_effect_are_underpowered():
    """Problem A, scarce data: the thesis reports DDNN/PINN ~200. Two noisy models per class cannot tell."""
    config = validate_config({"studies": {"scarce": {**A, "train": {"n": 10}}}})
    summary = pd.DataFrame(_models("scarce", "ddnn", [1e-2, 1e-5]) + _models("scarce", "pinn", [1e-3, 1e-4]))
    (row,) = _rows(reproduction_table(Evidence(summary, config)), "a_scarce")
    thesis = next(f.thesis_effect for f in FINDINGS if f.key == "a_scarce")
    assert row["detectable"] > thesis and row["verdict"] == UNDERPOWERED and "add seeds" in row["why"]
    many = pd.DataFrame(_models("scarce", "ddnn", [1e-3] * 6 + [1.1e-3] * 6)
                        + _models("scarce", "pinn", [1e-3] * 6 + [1.1e-3] * 6))
    (row,) = _rows(reproduction_table(Evidence(many, config)), "a_scarce")
    assert row["detectable"] < thesis and row["verdict"] == NOT_REPRODUCED


def test_the_shipped_ablations_config_tests_every_finding_the_default_run_does_not_reproduce():
    config = load_config(REPO / "config" / "ablations.yaml")
    variants = {name: s["ablation"] for name, s in config["studies"].items() if "ablation" in s}
    factors = {a["factor"] for a in variants.values()}
    assert {"training length", "data targets", "high-error selection", "replicates"} <= factors, factors
    varied = {a["of"] for a in variants.values()}
    assert {"A_dense", "B_S", "C"} <= varied, varied


def test_the_dag_trains_an_ablations_variants_as_studies(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["ablations"] = {"long": {"factor": "training length", "studies": ["A_scarce"],
                                    "scale": {"training.iterations": 2}}}
    path = tmp_path / "with_ablation.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(config)))
    plan = snakemake(tmp_path / "run", "-n", "--quiet", "rules", configfile=path).stdout
    plain = snakemake(tmp_path / "plain", "-n", "--quiet", "rules").stdout

    def jobs(text, rule):
        return next((int(line.split()[-1]) for line in text.splitlines() if line.split()[:1] == [rule]), 0)
    # the variant's own data, models (one fleet job per family) and compiles, beside the tiny config's
    assert jobs(plan, "train") == jobs(plain, "train") + 4 and jobs(plan, "compile") == jobs(plain, "compile") + 4
    assert jobs(plan, "dataset") == jobs(plain, "dataset") + 2
    # ... which copies the study's data sets (a training ablation leaves its data alone)
    shared = snakemake(tmp_path / "run", "-n", "results/A_scarce__long/data/train.parquet", configfile=path).stdout
    assert "input: results/A_scarce/data/train.parquet" in shared, shared

    # replicates: the seed the study has is its model, copied; the new seed trains (for real, one model each)
    config["ablations"] = {"seeds": {"factor": "replicates", "studies": ["A_scarce"],
                                     "set": {"grid": {"seeds": [0, 1]}}}}
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "seeds"
    plan = snakemake(run, "-n", "--quiet", "rules", configfile=path).stdout
    assert jobs(plan, "train") == jobs(plain, "train") + 8
    assert jobs(plan, "train_fleet") == jobs(plain, "train_fleet") + 2  # the new seed's fleets only
    targets = [f"results/A_scarce__seeds/models/ddnn_silu8_bs10_s{seed}/metrics.json" for seed in (0, 1)]
    snakemake(run, "--cores", "2", *targets, configfile=path)
    shared, trained, own = (json.loads((run / t).read_text()) for t in
                            (*targets, "results/A_scarce/models/ddnn_silu8_bs10_s0/metrics.json"))
    assert shared["shared_from"] == "A_scarce" and shared["study"] == "A_scarce__seeds" and "shared_from" not in trained
    assert (run / targets[0]).with_name("weights.pt").read_bytes() == \
        (run / "results/A_scarce/models/ddnn_silu8_bs10_s0/weights.pt").read_bytes()
    assert shared["mean_err"] == own["mean_err"] and trained["mean_err"] != own["mean_err"]

    # a job that only copies a model holds no GPU slot (on a GPU config, the model it copies does)
    config["studies"]["A_scarce"]["training"]["device"] = "cuda"
    path.write_text(yaml.safe_dump(config))
    plan = snakemake(tmp_path / "gpu", "-n", *targets, configfile=path).stdout
    blocks = {re.search(r"wildcards: study=(\S+), model=(\S+)", b).groups(): b
              for b in re.split(r"^\[.*\]$", plan, flags=re.M) if re.search(r"^rule train:", b, re.M)}
    assert "gpu=1" in blocks[("A_scarce", "ddnn_silu8_bs10_s0")], blocks
    assert "gpu=1" in blocks[("A_scarce__seeds", "ddnn_silu8_bs10_s1")], blocks
    assert "gpu=0" in blocks[("A_scarce__seeds", "ddnn_silu8_bs10_s0")], blocks
