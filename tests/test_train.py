"""Tests of the MLP, its portable spec, the loss terms and training.

(fhnkit.nets.mlp, fhnkit.training.terms, fhnkit.training.train)
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import fhnkit.training.train as train_mod
from fhnkit.artifacts import read_json, read_parquet_meta
from fhnkit.cell.model import FHNParams, rhs
from fhnkit.datasets.simulate import make_dataset, write_dataset
from fhnkit.nets import ACTIVATIONS, MLP, build_network, load_model, make_spec, n_params, network_class, save_model
from fhnkit.nets.base import Surrogate
from fhnkit.nets.itnn import IteratorMLP
from fhnkit.nets.windows import WindowedMLP
from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.loss import build_terms
from fhnkit.training.terms import BoxSampler, InitialTerm, PhysicsTerm, entry
from fhnkit.training.train import TrainingDiverged, TrainingRun, fit, train_model

METRIC_KEYS = {"study", "problem", "model", "class", "region", "windows", "arch", "layers", "depth", "neurons",
               "shape", "batch_size", "seed", "n_params", "iterations", "mean_err", "max_err", "iter_time_s", "status",
               "training_wall_s", "versions", "config_hash"}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def make_config(layer_configs=(("tanh", 16),), iterations=300, lr=0.01, classes=("ddnn", "pinn"), problem="A"):
    study = {"problem": problem, "t_max": 20 if problem == "A" else 5, "times_per_trajectory": 6,
             "train": {"n": 10}, "val": {"n": 200 if problem == "A" else 8},
             "grid": {"layers": [2], "layer_configs": [list(c) for c in layer_configs], "classes": list(classes),
                      "batch_size": [10]},
             "training": {"iterations": iterations, "validate_every": 100, "lr": lr,
                          "batch": {"physics": 64, "initial": 8}}}
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


@pytest.fixture(scope="module")
def problem_a(tmp_path_factory):
    """Problem A config, its DDNN and PINN specs, and the data frames and files."""
    cfg = make_config()
    d = tmp_path_factory.mktemp("data_a")
    train_df = write_dataset(cfg, "S", "train", d / "train.parquet")
    val_df = write_dataset(cfg, "S", "val", d / "val.parquet")
    specs = {s["class"]: s for s in expand_study(cfg, "S")}
    return {"cfg": cfg, "specs": specs, "train": train_df, "val": val_df, "train_path": d / "train.parquet",
            "val_path": d / "val.parquet"}


def short(spec, iterations=20, every=10, **training):
    spec = copy.deepcopy(spec)
    spec["training"].update(iterations=iterations, validate_every=every, **training)
    return spec


# --------------------------------------------------------------------------- MLP and spec


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_mlp_forward_shapes(act):
    assert set(ACTIVATIONS) >= {"silu", "tanh", "elu", "relu", "sigmoid", "sin"}
    spec = make_spec(["t", "U0", "W0"], ["U", "W"], [[act, 8], ["tanh", 4], [act, 3]], [0, 0, 0], [50, 1, 0.18],
                     [0.5, 0.1], [0.6, 0.1])
    model = MLP(spec)
    assert model(torch.rand(7, 3)).shape == (7, 2)
    assert model(torch.rand(0, 3)).shape == (0, 2)
    assert n_params(model) == (3 * 8 + 8) + (8 * 4 + 4) + (4 * 3 + 3) + (3 * 2 + 2)


def test_sin_activation_is_sin():
    x = torch.linspace(-4, 4, 11)
    assert torch.equal(ACTIVATIONS["sin"]()(x), torch.sin(x))


def test_unknown_activation():
    spec = make_spec(["t"], ["U", "W"], [["swish", 4]], [0], [1], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="swish"):
        MLP(spec)


def test_input_and_output_scaling():
    spec = make_spec(["t", "U0"], ["U", "W"], [["tanh", 4]], [0, -1], [20, 3], [0.5, 0.1], [2.0, 0.05])
    assert spec["input_offset"] == [10.0, 1.0] and spec["input_scale"] == [10.0, 2.0]
    model = MLP(spec)
    x = torch.tensor([[0.0, -1.0], [20.0, 3.0]])
    z = (x - model.input_offset) / model.input_scale
    assert torch.equal(z, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    expected = model.net(z) * torch.tensor([2.0, 0.05]) + torch.tensor([0.5, 0.1])
    torch.testing.assert_close(model(x), expected)


def test_save_load_round_trip_without_training_code(tmp_path):
    torch.manual_seed(0)
    spec = make_spec(["t", "U0", "W0", "K"], ["U", "W"], [["sin", 8], ["elu", 5], ["sigmoid", 3]], [0, 0, 0, 0],
                     [50, 1, 0.18, 1], [0.4, 0.05], [0.7, 0.1])
    model = MLP(spec)
    x = torch.rand(33, 4) * torch.tensor([50, 1, 0.18, 1])
    with torch.no_grad():
        expected = model(x)
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["spec.json", "weights.pt"]
    assert json.loads((tmp_path / "m" / "spec.json").read_text())["layers"] == [["sin", 8], ["elu", 5],
                                                                                  ["sigmoid", 3]]
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "m")(x), expected)
    code = textwrap.dedent(f"""
        import sys, torch
        from fhnkit.nets import load_model
        model = load_model({str(tmp_path / 'm')!r})
        assert not model.training
        with torch.no_grad():
            torch.save(model(torch.load({str(tmp_path / 'x.pt')!r})), {str(tmp_path / 'y.pt')!r})
        loaded = sorted(m for m in sys.modules if m.startswith("fhnkit"))
        banned = [m for m in loaded if m.split(".")[-1] in ("train", "terms", "datasets", "grid", "bench")]
        assert not banned, banned
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert torch.equal(torch.load(tmp_path / "y.pt"), expected)


def test_a_network_says_what_kind_of_surrogate_it_is():
    spec = make_spec(["t", "U0", "W0"], ["U", "W"], [["tanh", 4]], [0, 0, 0], [5, 1, 0.18], [0.4, 0.05], [0.7, 0.1])
    model = build_network(spec)
    assert type(model) is MLP and isinstance(model, Surrogate) and model.inputs == ["t", "U0", "W0"]
    assert model.iterator_dt is None and not model.is_iterator and model.n_windows == 1
    assert network_class({**spec, "itnn_dt": 0.5}) is IteratorMLP
    assert network_class({**spec, "windows": []}) is WindowedMLP
    iterator = build_network(make_spec(["U", "W", "K"], ["U", "W"], [["tanh", 4]], [0] * 3, [1] * 3, [0, 0], [1, 1])
                             | {"itnn_dt": 0.5})
    assert iterator.is_iterator and iterator.iterator_dt == 0.5 and iterator.problem == "C" and iterator.n_windows == 1
    df = pd.DataFrame({"t": [0.0, 1.0], "U0": [0.1, 0.1], "W0": [0.0, 0.0], "U": [0.1, 0.3], "W": [0.0, 0.02]})
    x, y = model.examples(df)
    assert torch.equal(x, torch.tensor([[0.0, 0.1, 0.0], [1.0, 0.1, 0.0]])) and torch.equal(y, torch.tensor(
        [[0.1, 0.0], [0.3, 0.02]]))


# --------------------------------------------------------------------------- loss terms


class ExactLinear(Surrogate):
    """Exact solution with k = 0 (dU/dt = 0): U = c, W relaxes to beta c / gamma at rate eps * gamma."""

    def __init__(self, p: FHNParams, c=0.3, w0=0.1, rate_error=0.0):
        super().__init__()
        self.p, self.c, self.w0, self.rate_error = p, c, w0, rate_error

    def forward(self, x):
        t = x[:, 0]
        w_inf = self.p.beta * self.c / self.p.gamma
        w = w_inf + (self.w0 - w_inf) * torch.exp(-(self.p.epsilon * self.p.gamma + self.rate_error) * t)
        return torch.stack([torch.full_like(t, self.c), w], dim=1)


def test_physics_term_vanishes_on_the_exact_solution():
    p = FHNParams(k=0.0)
    term = PhysicsTerm(BoxSampler([0.0], [20.0]), p, lambda x: 0.0, batch_size=256, weight=1.0)
    gen = 0  # the seed of the batch stream
    assert float(term.loss(ExactLinear(p), gen).detach()) < 1e-12
    assert float(term.loss(ExactLinear(p, w0=0.5, rate_error=0.5), gen).detach()) > 1e-4
    fixed = InitialTerm(BoxSampler([0.0], [20.0]), 1, 1.0, fixed_state=[0.3, 0.1])
    assert float(fixed.loss(ExactLinear(p), gen)) < 1e-14
    assert float(fixed.loss(ExactLinear(p, w0=0.2), gen)) == pytest.approx(0.01, rel=1e-5)
    # and with the real FHN right-hand side (k = 10) the same trajectory is not a solution
    real = PhysicsTerm(BoxSampler([0.0], [20.0]), FHNParams(), lambda x: 0.0, batch_size=256, weight=1.0)
    assert float(real.loss(ExactLinear(p), gen).detach()) > 1e-2


def test_physics_term_matches_finite_differences():
    torch.manual_seed(1)
    spec = make_spec(["t", "U0", "W0"], ["U", "W"], [["tanh", 16], ["silu", 16]], [0, 0, 0], [5, 1, 0.18],
                     [0.5, 0.1], [0.5, 0.1])
    model = MLP(spec)
    p = FHNParams()
    sampler = BoxSampler([0.0, 0.0, 0.0], [5.0, 1.0, 0.18])
    term = PhysicsTerm(sampler, p, lambda x: 0.1, batch_size=128, weight=1.0)
    loss = float(term.loss(model, 5).detach())
    x = entry(PhysicsTerm.batch_sampler([term], [5])(torch.tensor(0))).double()  # the same collocation points
    m64 = copy.deepcopy(model).double()
    h = 1e-4
    dx = torch.zeros_like(x)
    dx[:, 0] = h
    with torch.no_grad():
        y = m64(x)
        dy = (m64(x + dx) - m64(x - dx)) / (2 * h)
    fu, fw = rhs(y[:, 0], y[:, 1], 0.1, p)
    reference = float(((dy[:, 0] - fu) ** 2 + (dy[:, 1] - fw) ** 2).mean())
    assert reference > 1e-3  # an untrained network is far from a solution
    assert loss == pytest.approx(reference, rel=1e-3)


def test_initial_term_for_b_uses_the_input_initial_state():
    sampler = BoxSampler([0.0, 0.0, 0.0], [5.0, 1.0, 0.18])
    term = InitialTerm(sampler, 16, 1.0)

    class Echo(Surrogate):
        def forward(self, x):
            assert (x[:, 0] == 0).all()
            return x[:, 1:3]

    assert float(term.loss(Echo(), 0)) == 0.0


def test_problem_c_physics_term_uses_the_k_map():
    cfg = make_config(problem="C", classes=["pinn"])
    spec = expand_study(cfg, "S")[0]
    train_df = make_dataset(cfg, "S", "train")[0]
    terms = {t.name: t for t in build_terms(ModelSpec.from_mapping(spec), train_df)}
    assert set(terms) == {"data", "physics", "initial"}
    x = entry(PhysicsTerm.batch_sampler([terms["physics"]], [0])(torch.tensor(0)))
    assert x.shape == (spec["training"]["batch"]["physics"], 4)
    torch.testing.assert_close(terms["physics"].current(x), 0.08 + 0.04 * x[:, 3])


def test_ddnn_has_only_the_data_term(problem_a):
    terms = build_terms(ModelSpec.from_mapping(problem_a["specs"]["ddnn"]), problem_a["train"])
    assert [t.name for t in terms] == ["data"]


# --------------------------------------------------------------------------- training


def test_ddnn_on_problem_a_reduces_validation_error(problem_a):
    run = TrainingRun(ModelSpec.from_mapping(problem_a["specs"]["ddnn"]), problem_a["train"], problem_a["val"])
    initial_mean, initial_max = run.validate()
    history = fit(run, progress=False)
    assert history["iteration"].tolist() == [100, 200, 300]
    assert list(history.columns) == ["iteration", "lr", "loss_data", "loss_total", "val_mean", "val_max",
                                     "iter_time_s", "wall_time_s"]
    assert history["val_mean"].iloc[-1] < 0.3 * initial_mean  # 0.47 -> 0.06 with the fixed seed
    assert history["loss_data"].iloc[-1] < 0.1 * history["loss_data"].iloc[0]
    assert (history["iter_time_s"] > 0).all() and history["wall_time_s"].is_monotonic_increasing


def test_pinn_history_has_every_loss_term(problem_a):
    spec = short(problem_a["specs"]["pinn"], iterations=25, every=10)
    history = fit(TrainingRun(ModelSpec.from_mapping(spec), problem_a["train"], problem_a["val"]), progress=False)
    for col in ("loss_data", "loss_physics", "loss_initial", "loss_total", "val_mean", "val_max", "iter_time_s",
                "lr", "iteration"):
        assert col in history.columns, col
        assert history[col].notna().all() and np.isfinite(history[col]).all()
    assert history["iteration"].tolist() == [10, 20, 25]  # the last iteration is always validated
    w = spec["training"]["weights"]
    # the total is the weighted sum of the terms (per iteration, hence also of the window means)
    np.testing.assert_allclose(history["loss_total"], w["data"] * history["loss_data"]
                               + w["physics"] * history["loss_physics"] + w["initial"] * history["loss_initial"],
                               rtol=1e-5)
    assert (history["val_max"] >= history["val_mean"]).all()


def test_validation_error_is_eq_3_3(problem_a):
    run = TrainingRun(ModelSpec.from_mapping(problem_a["specs"]["ddnn"]), problem_a["train"], problem_a["val"])
    val = problem_a["val"]
    with torch.no_grad():
        pred = run.model(torch.tensor(val[["t"]].to_numpy(np.float32))).double().numpy()
    err = np.abs(pred - val[["U", "W"]].to_numpy()).sum(axis=1)
    mean, mx = run.validate()
    assert mean == pytest.approx(err.mean(), rel=1e-5) and mx == pytest.approx(err.max(), rel=1e-5)


def _weights(directory):
    return torch.load(directory / "weights.pt", weights_only=True)


def test_same_spec_gives_bit_identical_weights(problem_a, tmp_path):
    spec = short(problem_a["specs"]["pinn"], iterations=30, every=15)
    for out in ("run1", "run2"):
        train_model(ModelSpec.from_mapping(spec), problem_a["train_path"], problem_a["val_path"], tmp_path / out,
                    progress=False)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code = textwrap.dedent(f"""
        import json
        from fhnkit.plan.model_spec import ModelSpec
        from fhnkit.training.train import train_model
        spec = json.load(open({str(tmp_path / 'spec.json')!r}))
        train_model(ModelSpec.from_mapping(spec), {str(problem_a['train_path'])!r}, {str(problem_a['val_path'])!r},
                    {str(tmp_path / 'run3')!r}, progress=False)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    w1, w2, w3 = (_weights(tmp_path / r) for r in ("run1", "run2", "run3"))
    assert w1.keys() == w2.keys() == w3.keys()
    for key in w1:
        assert torch.equal(w1[key], w2[key]) and torch.equal(w1[key], w3[key]), key
    m1, m3 = read_json(tmp_path / "run1" / "metrics.json"), read_json(tmp_path / "run3" / "metrics.json")
    assert m1["mean_err"] == m3["mean_err"] and m1["max_err"] == m3["max_err"]
    h1 = pd.read_parquet(tmp_path / "run1" / "history.parquet")
    h3 = pd.read_parquet(tmp_path / "run3" / "history.parquet")
    cols = [c for c in h1.columns if c.startswith(("loss_", "val_")) or c in ("iteration", "lr")]
    pd.testing.assert_frame_equal(h1[cols], h3[cols], check_exact=True)


def test_different_seed_gives_different_weights(problem_a):
    spec = short(problem_a["specs"]["ddnn"], iterations=5, every=5)
    other = dict(spec, torch_seed=spec["torch_seed"] + 1)
    a, b = (TrainingRun(ModelSpec.from_mapping(s), problem_a["train"], problem_a["val"]) for s in (spec, other))
    assert not torch.equal(a.model.net[0].weight, b.model.net[0].weight)


def test_divergence_from_huge_learning_rate_is_recorded_as_a_failed_model(problem_a, tmp_path):
    cfg = make_config(layer_configs=[("relu", 16)], classes=["ddnn"])
    spec = short(expand_study(cfg, "S")[0], iterations=50, lr=1e12)
    metrics = train_model(ModelSpec.from_mapping(spec), problem_a["train_path"], problem_a["val_path"],
                          tmp_path / "out", progress=False)
    msg = metrics["error"]
    assert f"S/{spec['model']}" in msg and "iteration 2" in msg and "loss_data" in msg
    assert metrics["status"] == "failed" and metrics["iterations"] == 2 and metrics["mean_err"] is None
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    weights = torch.load(tmp_path / "out" / "weights.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values()), "the last finite weights are kept"


def test_divergence_fails_the_job_when_configured(problem_a, tmp_path):
    cfg = make_config(layer_configs=[("relu", 16)], classes=["ddnn"])
    spec = short(expand_study(cfg, "S")[0], iterations=50, lr=1e12)
    spec["training"]["on_divergence"] = "fail"
    with pytest.raises(TrainingDiverged, match=rf"S/{spec['model']} diverged at iteration 2"):
        train_model(ModelSpec.from_mapping(spec), problem_a["train_path"], problem_a["val_path"], tmp_path / "out",
                    progress=False)
    assert not (tmp_path / "out" / "metrics.json").exists() and not (tmp_path / "out" / "checkpoint.pt").exists()


def test_training_device_choice():
    assert train_mod.training_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert train_mod.training_device("auto") == torch.device("cuda:0")
    else:
        assert train_mod.training_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="training.device is 'cuda' but torch sees no CUDA device"):
            train_mod.training_device("cuda")


def test_divergence_from_huge_term_weight(problem_a):
    spec = short(problem_a["specs"]["pinn"])
    spec["training"]["weights"]["data"] = 1e39  # overflows float32 in the weighted sum
    run = TrainingRun(ModelSpec.from_mapping(spec), problem_a["train"], problem_a["val"])
    with pytest.raises(TrainingDiverged, match=rf"{spec['model']} diverged at iteration 1: .*loss_total=inf"):
        run.step()


def test_train_model_outputs_and_metrics_written_last(problem_a, tmp_path, monkeypatch):
    order = []
    for name in ("write_json", "write_parquet", "save_model"):
        real = getattr(train_mod, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            _real(*args, **kwargs)
            order.append((_name, str(args[1])))
        monkeypatch.setattr(train_mod, name, wrapper)
    spec = short(problem_a["specs"]["ddnn"], iterations=20, every=10)
    spec["config_hash"] = "0123456789abcdef"
    out = tmp_path / "model"
    metrics = train_model(ModelSpec.from_mapping(spec), problem_a["train_path"], problem_a["val_path"], out,
                          progress=False)
    assert order[-1] == ("write_json", str(out / "metrics.json"))
    assert [n for n, _ in order].count("write_json") == 1
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "metrics.json", "spec.json", "weights.pt"]
    on_disk = read_json(out / "metrics.json")
    assert set(on_disk) == METRIC_KEYS
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["status"] == "ok" and on_disk["iterations"] == 20 and on_disk["model"] == spec["model"]
    assert on_disk["config_hash"] == "0123456789abcdef"
    assert on_disk["n_params"] == n_params(load_model(out))
    assert 0 < on_disk["mean_err"] <= on_disk["max_err"] and on_disk["iter_time_s"] > 0
    assert set(on_disk["versions"]) >= {"fhnkit", "torch", "numpy", "python"}
    history = pd.read_parquet(out / "history.parquet")
    assert on_disk["mean_err"] == history["val_mean"].iloc[-1]
    assert read_parquet_meta(out / "history.parquet")["spec"]["model"] == spec["model"]
    assert math.isclose(on_disk["iter_time_s"], float(np.median(history["iter_time_s"])))
