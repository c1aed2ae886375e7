"""Time-domain splitting into consecutive windows with the continuity term (eq. 3.20)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit.cell.problems import window_edges
from fhnkit.datasets.simulate import write_dataset
from fhnkit.nets import MLP, load_model, make_spec
from fhnkit.nets.windows import WindowedMLP, interface_jumps, windowed_spec
from fhnkit.plan.config import ConfigError, validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.loss import build_terms
from fhnkit.training.terms import BoxSampler, ContinuityTerm
from fhnkit.training.train import train_model

INPUTS = ["t", "U0", "W0"]


def windowed(n=3, t_max=6.0, seed=0):
    torch.manual_seed(seed)
    edges = window_edges(t_max, n)
    ranges = [([0.0, 0.0], [1.0, 0.2])] * n
    return WindowedMLP(windowed_spec(INPUTS, ["U", "W"], [["tanh", 8]], [0, 0, 0], [t_max, 1, 0.18], edges, ranges))


def config(**grid):
    study = {"problem": "B", "i_app": 0.1, "t_max": 8, "times_per_trajectory": 17, "train": {"n": 60},
             "val": {"n": 10}, "training": {"iterations": 60, "validate_every": 30},
             "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "batch_size": [32], **grid}}
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


def test_each_row_is_routed_to_the_network_of_its_window():
    model = windowed()
    t = torch.tensor([0.0, 1.9, 2.0, 3.5, 4.0, 5.99, 6.0])
    x = torch.stack([t, torch.full_like(t, 0.3), torch.full_like(t, 0.05)], dim=1)
    assert model.window_of(t).tolist() == [0, 0, 1, 1, 2, 2, 2]  # an interface belongs to the later window
    out = model(x)
    for row, k in enumerate(model.window_of(t).tolist()):
        torch.testing.assert_close(out[row], model.nets[k](x[row:row + 1])[0])


def test_each_window_network_is_scaled_to_its_own_window():
    model = windowed(n=4, t_max=8.0)
    for k, net in enumerate(model.nets):
        lo = net.input_offset[0] - net.input_scale[0]
        hi = net.input_offset[0] + net.input_scale[0]
        assert (float(lo), float(hi)) == (2.0 * k, 2.0 * (k + 1))


def test_continuity_term_is_the_interface_jump_and_vanishes_for_identical_networks():
    model = windowed()
    term = ContinuityTerm(BoxSampler([0, 0, 0], [6, 1, 0.18]), window_edges(6.0, 3), 64, 1.0)
    assert float(term.loss(model, 0).detach()) > 0
    for net in model.nets[1:]:
        net.load_state_dict(model.nets[0].state_dict())
    for net in model.nets:  # same scaling in every window too: the three networks are one function
        net.input_offset[0], net.input_scale[0] = 3.0, 3.0
    assert float(term.loss(model, 0).detach()) == 0.0
    assert np.all(interface_jumps(model, torch.rand(5, 2)) == 0)


def test_continuity_term_alone_closes_the_jumps():
    model = windowed(seed=3)
    params = torch.rand(50, 2) * torch.tensor([1.0, 0.18])
    before = interface_jumps(model, params).mean()
    term = ContinuityTerm(BoxSampler([0, 0, 0], [6, 1, 0.18]), window_edges(6.0, 3), 64, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for k in range(200):
        opt.zero_grad()
        term.loss(model, 0, k).backward()
        opt.step()
    assert interface_jumps(model, params).mean() < 0.1 * before


def test_grid_axis_names_windowed_models_and_adds_the_continuity_term():
    cfg = config(classes=["ddnn", "pinn", "itnn"], windows=[1, 4])
    specs = {s["model"]: s for s in expand_study(cfg, "S")}
    assert sorted(specs) == ["ddnn_tanh8_bs32_s0", "ddnn_tanh8_w4_bs32_s0", "itnn_tanh8_bs32_s0",
                             "pinn_tanh8_bs32_s0", "pinn_tanh8_w4_bs32_s0"]  # an ITNN has no time to split
    df = pd.DataFrame({"traj": [0, 0], "t": [0.0, 8.0], "U0": [0.1, 0.1], "W0": [0.0, 0.0], "U": [0.1, 0.2],
                       "W": [0.0, 0.1]})
    names = [t.name for t in build_terms(ModelSpec.from_mapping(specs["pinn_tanh8_w4_bs32_s0"]), df)]
    assert names == ["data", "physics", "initial", "continuity"]
    names = [t.name for t in build_terms(ModelSpec.from_mapping(specs["pinn_tanh8_bs32_s0"]), df)]
    assert names == ["data", "physics", "initial"]


def test_windows_for_itnn_only_are_refused():
    with pytest.raises(ConfigError, match="grid.windows: itnn models have no time input"):
        config(classes=["itnn"], windows=[2])


def test_a_windowed_model_trains_saves_and_loads(tmp_path):
    cfg = config(classes=["ddnn"], windows=[4])
    for split in ("train", "val"):
        write_dataset(cfg, "S", split, tmp_path / f"{split}.parquet")
    spec = expand_study(cfg, "S")[0]
    metrics = train_model(ModelSpec.from_mapping(spec), tmp_path / "train.parquet", tmp_path / "val.parquet",
                          tmp_path / "m", progress=False)
    assert metrics["status"] == "ok" and metrics["windows"] == 4
    assert metrics["jump_err"] > 0 and metrics["jump_max_err"] >= metrics["jump_err"]
    history = pd.read_parquet(tmp_path / "m" / "history.parquet")
    assert {"loss_continuity", "val_jump_mean", "val_jump_max"} <= set(history.columns)
    model = load_model(tmp_path / "m")
    assert isinstance(model, WindowedMLP) and len(model.nets) == 4
    assert model.n_windows == 4 and not model.is_iterator and model.iterator_dt is None
    one = MLP(make_spec(INPUTS, ["U", "W"], [["tanh", 8]], [0] * 3, [1] * 3, [0, 0], [1, 1]))
    assert metrics["n_params"] == 4 * sum(p.numel() for p in one.parameters())
    x = torch.tensor([[0.5, 0.3, 0.02], [7.5, 0.3, 0.02]])
    assert torch.isfinite(model(x)).all()
