"""A fleet trains many models as a few batched computations; each model must stay what it is alone.

The models of a small problem B grid (different depths, widths, activations, seeds; DDNN and PINN)
are trained for 200 iterations as a fleet and one at a time on the CPU, from the same specs and data,
and their weights compared. Batched matrix products sum in another order than one model's, so
the weights agree to a bound, not bit for bit; the bound is printed and asserted.
"""

from __future__ import annotations

import copy
import itertools
import os

import numpy as np
import pytest
import torch

from fhnkit.datasets import write_dataset
from fhnkit.plan import expand_study, validate_config
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training import TrainingRun, fit
from fhnkit.training.fleet import fit_fleet, make_groups
from fhnkit.training.stacked import StackedMLP, stack_order
from fhnkit.training.stacked_group import StackedGroup

ITERATIONS = 200
BOUND = 1e-4  # max |fleet - alone| over every weight after 200 iterations (measured: see the test's output)


def make_config(classes=("ddnn", "pinn"), layers=(1, 2), lr=0.005):
    study = {"problem": "B", "t_max": 5, "times_per_trajectory": 11, "train": {"n": 30}, "val": {"n": 8},
             "grid": {"layers": list(layers), "layer_configs": [["tanh", 8], ["silu", 16]], "classes": list(classes),
                      "batch_size": [8, 16], "seeds": [0, 1]},
             "training": {"iterations": ITERATIONS, "validate_every": 50, "lr": lr,
                          "batch": {"physics": 32, "initial": 8}}}
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    cfg = make_config()
    d = tmp_path_factory.mktemp("fleet")
    data = {split: write_dataset(cfg, "S", split, d / f"{split}.parquet") for split in ("train", "val")}
    return expand_study(cfg, "S"), data


def runs_of(specs, data):
    return [TrainingRun(ModelSpec.from_mapping(copy.deepcopy(spec)), data["train"], data["val"]) for spec in specs]


def weights(run) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}


def test_a_stacked_network_gives_each_models_outputs(grid):
    specs, data = grid
    same_depth = [s for s in specs if s["depth"] == 2 and s["class"] == "ddnn"]
    runs = runs_of(same_depth, data)
    stacked = StackedMLP([run.model for run in runs])
    x = torch.rand((len(runs), 50, 3)) * torch.tensor([5.0, 1.0, 1.0])
    with torch.no_grad():
        together = stacked(x)
        alone = torch.stack([run.model(x[i]) for i, run in enumerate(runs)])
    assert together.shape == (len(runs), 50, 2)
    assert torch.allclose(together, alone, atol=1e-6, rtol=1e-5)


def test_the_grid_trains_as_a_handful_of_stacked_groups(grid):
    specs, data = grid
    groups = make_groups(runs_of(specs, data))
    # DDNN and PINN (by hand or by autograd): two batched computations for the whole grid; the two batch sizes
    # stack (the smaller padded, the padding weighted 0), and so do the depths 1 and 2 (the shallower passed
    # through an identity layer)
    assert len(specs) == 2 * (2 + 4) * 2 * 2 and len(groups) == 2
    assert sorted({run.terms[0].batch_size for g in groups for run in g.runs}) == [8, 16]
    assert all(isinstance(g, StackedGroup) for g in groups)
    assert all(sorted({run.spec.depth for run in g.runs}) == [1, 2] for g in groups)


def test_each_model_in_a_fleet_ends_as_when_trained_alone(grid, capsys):
    specs, data = grid
    alone_runs = runs_of(specs, data)
    alone = []
    for run in alone_runs:
        fit(run, progress=False)
        alone.append(weights(run))
    fleet_runs = runs_of(specs, data)
    histories = fit_fleet(fleet_runs)
    worst = 0.0
    for spec, run, history, want in zip(specs, fleet_runs, histories, alone, strict=True):
        assert run.iteration == ITERATIONS and list(history["iteration"]) == [50, 100, 150, 200], spec["model"]
        got = weights(run)
        assert got.keys() == want.keys()
        diff = max(float((got[k] - want[k]).abs().max()) for k in got)
        worst = max(worst, diff)
        assert diff < BOUND, (spec["model"], diff)
        assert {"loss_total", "loss_data", "val_mean", "val_max", "lr", "iter_time_s"} <= set(history.columns)
    with capsys.disabled():
        print(f"\nfleet vs alone after {ITERATIONS} iterations, {len(specs)} models: max |dw| = {worst:.2e}")


def test_the_batch_sequence_is_the_solo_one(grid):
    """A fleet group draws, for each of its models and each iteration, the batches the model draws alone
    (counter-based draws: the group's samplers against each run's own), whatever its batch size."""
    specs, data = grid
    for group in make_groups(runs_of(specs, data)):
        for k in (0, 1, 199):
            together = [draw(torch.tensor(k)) for draw in group.samplers]
            for m, run in enumerate(group.runs):
                assert len(run.samplers) == len(run.terms) >= 1
                for batch, draw in zip(together, run.samplers, strict=True):
                    alone = draw(torch.tensor(k))
                    parts = zip(batch if isinstance(batch, tuple) else (batch,),
                                alone if isinstance(alone, tuple) else (alone,), strict=True)
                    # its own rows (a smaller batch is padded to the group's largest)
                    assert all(torch.equal(t[m][: len(a[0])], a[0]) for t, a in parts), (run.spec.model, k)


def test_a_diverging_model_stops_alone_and_its_mates_go_on(grid):
    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs if s["class"] == "ddnn" and s["depth"] == 1]
    specs[0]["training"]["lr"] = 1e30  # this one diverges at once
    for s in specs:
        s["training"]["iterations"] = 60
    runs = runs_of(specs, data)
    results = fit_fleet(runs)
    assert "diverged at iteration" in str(results[0]) and results[0].rows is not None
    assert all(len(r) == 2 and np.isfinite(r["val_mean"]).all() for r in results[1:])
    assert all(run.iteration == 60 for run in runs[1:])


def test_each_model_keeps_its_own_learning_rate_schedule(grid):
    """Two models of one group with different plateau patience: each ends with the learning rate
    its ReduceLROnPlateau gives it alone."""
    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs if s["class"] == "ddnn" and s["depth"] == 1][:2]
    for s, patience in zip(specs, (5, 10_000), strict=True):
        s["training"].update(iterations=100, validate_every=100)
        s["training"]["plateau"].update(patience=patience, threshold=0.5, factor=0.5)
    fleet_runs, alone_runs = runs_of(specs, data), runs_of(specs, data)
    fit_fleet(fleet_runs)
    for run in alone_runs:
        fit(run, progress=False)
    lrs = [run.optimizer.param_groups[0]["lr"] for run in fleet_runs]
    assert lrs == [run.optimizer.param_groups[0]["lr"] for run in alone_runs]
    assert lrs[0] < specs[0]["training"]["lr"] and lrs[1] == specs[1]["training"]["lr"]


def test_bench_train_times_fleet_and_solo_side_by_side(tmp_path):
    import json

    from conftest import TINY
    from fhnkit.cli import main

    out = tmp_path / "train.json"
    assert main(["bench", "train", str(TINY), "--study", "A_scarce", "--iterations", "20", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    fleet, solo = result["records"]
    assert (fleet["mode"], solo["mode"]) == ("fleet", "solo")
    for rec in (fleet, solo):
        assert rec["models"] == 4 and rec["iterations"] == 20 and rec["device"] == "cpu" and rec["threads"] >= 1
        assert rec["model_iterations_per_s"] == pytest.approx(4 * 20 / rec["wall_s"])
    assert fleet["groups"] == 2 and solo["groups"] == 4  # DDNN, PINN (of 1 and 2 layers): one computation each
    assert result["ratio"] == pytest.approx(fleet["model_iterations_per_s"] / solo["model_iterations_per_s"])


def test_bench_train_refuses_a_missing_config(capsys):
    from fhnkit.cli import main

    assert main(["bench", "train", "--study", "B_S"]) == 2
    assert "needs the configuration" in capsys.readouterr().err


def test_a_fleet_writes_each_model_as_train_model_does(grid, tmp_path):
    """Same four files per model, the same spec.json bytes, the same metrics and history columns; a
    finished model is left alone, and a diverging one is recorded without stopping the others."""
    import json

    import pandas as pd

    from fhnkit.training import train_fleet, train_model

    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs[:4]]
    for s in specs:
        s["training"].update(iterations=40, validate_every=20)
    specs[1]["training"]["lr"] = 1e30  # diverges: recorded as failed
    paths = {"train": tmp_path / "train.parquet", "val": tmp_path / "val.parquet"}
    for split, path in paths.items():
        data[split].to_parquet(path)
    alone = [train_model(ModelSpec.from_mapping(s), paths["train"], paths["val"], tmp_path / "alone" / s["model"],
                         progress=False)
             for s in specs]
    finished = {"status": "ok", "finished": "before", "config_hash": specs[3]["config_hash"]}
    stale = {"status": "ok", "finished": "before", "config_hash": "another spec"}
    for spec, metrics in ((specs[3], finished), (specs[2], stale)):
        (tmp_path / "fleet" / spec["model"]).mkdir(parents=True)
        (tmp_path / "fleet" / spec["model"] / "metrics.json").write_text(json.dumps(metrics))
    fleet = train_fleet([(ModelSpec.from_mapping(s), paths, tmp_path / "fleet" / s["model"]) for s in specs])
    assert fleet[3] == finished  # finished from the same spec: not trained again
    assert fleet[2]["status"] == "ok" and fleet[2]["config_hash"] == specs[2]["config_hash"]  # another spec's
    assert fleet[1]["status"] == "failed" and fleet[1]["error"] == alone[1]["error"]  # same iteration, same terms
    for s, a, f in zip(specs[:3], alone[:3], fleet[:3], strict=True):
        one, many = tmp_path / "alone" / s["model"], tmp_path / "fleet" / s["model"]
        assert sorted(p.name for p in many.iterdir()) == sorted(p.name for p in one.iterdir())
        assert (many / "spec.json").read_bytes() == (one / "spec.json").read_bytes()
        assert set(json.loads((many / "metrics.json").read_text())) == set(a) == set(f)
        if a["status"] == "ok":
            assert f["mean_err"] == pytest.approx(a["mean_err"], rel=1e-4)
            h1, h2 = pd.read_parquet(one / "history.parquet"), pd.read_parquet(many / "history.parquet")
            assert list(h1.columns) == list(h2.columns) and list(h1["iteration"]) == list(h2["iteration"])


def test_a_killed_fleet_resumes_from_its_checkpoint_bit_identical(grid, tmp_path, monkeypatch):
    import pandas as pd

    from fhnkit.training import train_fleet
    from fhnkit.training.stacked_group import StackedGroup as Group

    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs if s["class"] == "pinn" and s["depth"] == 1]
    for s in specs:
        s["training"].update(iterations=60, validate_every=20, checkpoint_every=20)
    paths = {"train": tmp_path / "train.parquet", "val": tmp_path / "val.parquet"}
    for split, path in paths.items():
        data[split].to_parquet(path)

    def jobs(name):
        return [(ModelSpec.from_mapping(s), paths, tmp_path / name / s["model"]) for s in specs]

    train_fleet(jobs("whole"), checkpoint_dir=tmp_path / "whole_ckpt")
    advance = Group.advance

    def killed_at_40(self, n):
        if self.iteration >= 40:
            raise KeyboardInterrupt("killed")
        advance(self, n)

    monkeypatch.setattr(Group, "advance", killed_at_40)
    with pytest.raises(KeyboardInterrupt):
        train_fleet(jobs("resumed"), checkpoint_dir=tmp_path / "ckpt")
    assert len(list((tmp_path / "ckpt").glob("fleet-*.pt"))) == 1
    assert not any((tmp_path / "resumed").glob("*/metrics.json"))
    monkeypatch.setattr(Group, "advance", advance)
    train_fleet(jobs("resumed"), checkpoint_dir=tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("fleet-*.pt"))  # removed once the group ended
    timing = ["iter_time_s", "wall_time_s"]
    for s in specs:
        whole, resumed = tmp_path / "whole" / s["model"], tmp_path / "resumed" / s["model"]
        a, b = torch.load(whole / "weights.pt"), torch.load(resumed / "weights.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), s["model"]
        ha = pd.read_parquet(whole / "history.parquet").drop(columns=timing)
        hb = pd.read_parquet(resumed / "history.parquet").drop(columns=timing)
        pd.testing.assert_frame_equal(ha, hb)


@pytest.mark.parametrize("checkpointed", [True, False])
def test_a_fleet_killed_while_writing_its_models_ends_bit_identical(grid, tmp_path, monkeypatch, checkpointed):
    """A job killed between two models' files of one group (the first written, the others not): the rerun
    keeps the first as it is and gives the others exactly the weights and history of an uninterrupted job
    (their group is the same group, not one of the unfinished models only: a group of other models sums in
    another order); with a checkpoint directory from the group's saved end state, without an iteration."""
    import pandas as pd

    from fhnkit.training import fleet, train_fleet
    from fhnkit.training.stacked_group import StackedGroup as Group

    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs if s["class"] == "ddnn" and s["seed"] == 0 and s["batch_size"] == 8
             and s["model"].startswith("ddnn_tanh8")]
    assert [s["depth"] for s in specs] == [1, 2, 2]  # rows in other orders per layer (pass-through rows)
    for s in specs:
        s["training"].update(iterations=40, validate_every=20, checkpoint_every=20)
    paths = {"train": tmp_path / "train.parquet", "val": tmp_path / "val.parquet"}
    for split, path in paths.items():
        data[split].to_parquet(path)
    ckpt = (lambda name: tmp_path / f"{name}_ckpt") if checkpointed else (lambda name: None)

    def jobs(name):
        return [(ModelSpec.from_mapping(s), paths, tmp_path / name / s["model"]) for s in specs]

    train_fleet(jobs("whole"), checkpoint_dir=ckpt("whole"))
    write, written = fleet.write_finished, []

    def killed_after_one(run, *args, **kwargs):
        if written:
            raise KeyboardInterrupt("killed")
        written.append(run.spec.model)
        return write(run, *args, **kwargs)

    monkeypatch.setattr(fleet, "write_finished", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        train_fleet(jobs("killed"), checkpoint_dir=ckpt("killed"))
    first = tmp_path / "killed" / written[0]
    kept = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.iterdir()}
    monkeypatch.setattr(fleet, "write_finished", write)
    if checkpointed:  # the group resumes at its end: no iteration
        monkeypatch.setattr(Group, "advance", lambda self, n: pytest.fail("the group trained again"))
    train_fleet(jobs("killed"), checkpoint_dir=ckpt("killed"))
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.iterdir()} == kept
    if checkpointed:
        assert not list(ckpt("killed").glob("fleet-*.pt"))  # removed once every model was written
    timing = ["iter_time_s", "wall_time_s"]
    for s in specs:
        whole, killed = tmp_path / "whole" / s["model"], tmp_path / "killed" / s["model"]
        a, b = torch.load(whole / "weights.pt"), torch.load(killed / "weights.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), s["model"]
        pd.testing.assert_frame_equal(pd.read_parquet(whole / "history.parquet").drop(columns=timing),
                                      pd.read_parquet(killed / "history.parquet").drop(columns=timing))


def test_an_unreadable_fleet_checkpoint_is_ignored(grid, tmp_path, caplog):
    from fhnkit.training import train_fleet
    from fhnkit.training.fleet import checkpoint_name, make_groups

    specs, data = grid
    specs = [copy.deepcopy(s) for s in specs if s["class"] == "ddnn" and s["depth"] == 1]
    for s in specs:
        s["training"].update(iterations=20, validate_every=10)
    paths = {"train": tmp_path / "train.parquet", "val": tmp_path / "val.parquet"}
    for split, path in paths.items():
        data[split].to_parquet(path)
    (group,) = make_groups(runs_of(specs, data))
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / checkpoint_name(group)).write_bytes(b"truncated")
    results = train_fleet([(ModelSpec.from_mapping(s), paths,
                            tmp_path / s["model"]) for s in specs], checkpoint_dir=tmp_path / "ckpt")
    assert all(r["status"] == "ok" and r["iterations"] == 20 for r in results)
    assert "ignoring fleet checkpoint" in caplog.text


def test_models_are_cut_into_fleets_stackable_ones_together():
    from fhnkit.plan import expand_study, study_fleets

    cfg = make_config()
    specs = expand_study(cfg, "S")
    assert len(study_fleets(cfg, specs)) == 1  # the default (fleet: 64): the 48 models in one fleet
    assert study_fleets({**cfg, "fleet": 1}, specs) == {}  # fleet: 1, one job per model
    fleets = study_fleets({**cfg, "fleet": 5}, specs)
    assert [len(v) for v in fleets.values()] == [5] * 9 + [3] and list(fleets) == [f"f{i}" for i in range(10)]
    by_name = {s["model"]: s for s in specs}
    first = [by_name[m] for m in fleets["f0"]]
    assert {s["class"] for s in first} == {"ddnn"} and [s["depth"] for s in first] == sorted(s["depth"] for s in first)
    assert sorted(m for ms in fleets.values() for m in ms) == sorted(by_name)


def test_a_fleet_model_is_handed_over_only_when_finished_from_the_same_spec(tmp_path):
    from fhnkit.cluster.handoff import take_from_fleet

    src, dst = tmp_path / "fleet" / "m", tmp_path / "models" / "m"
    src.mkdir(parents=True)
    for name in ("weights.pt", "spec.json", "history.parquet"):
        (src / name).write_text(name)
    assert not take_from_fleet(src, dst, "abc")  # not finished: no metrics.json
    (src / "metrics.json").write_text('{"config_hash": "other"}')
    assert not take_from_fleet(src, dst, "abc") and not dst.exists()  # another spec's model
    (src / "metrics.json").write_text('{"config_hash": "abc"}')
    assert take_from_fleet(src, dst, "abc")
    assert sorted(p.name for p in dst.iterdir()) == ["history.parquet", "metrics.json", "spec.json", "weights.pt"]
    assert not any(src.iterdir())


def test_a_hand_over_killed_half_way_leaves_the_model_whole_in_the_fleet(tmp_path, monkeypatch):
    """A `train` job killed while it moves its model out of the fleet's directory (two files moved): every
    file is still in the fleet's directory, and the rerun's hand-over takes them all."""
    from fhnkit.cluster import handoff

    src, dst = tmp_path / "fleet" / "m", tmp_path / "models" / "m"
    src.mkdir(parents=True)
    files = {"weights.pt": b"w", "spec.json": b"s", "history.parquet": b"h", "metrics.json": b'{"config_hash": "abc"}'}
    for name, content in files.items():
        (src / name).write_bytes(content)
    link, calls = os.link, []

    def killed_after_two(a, b):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(b)
        link(a, b)

    monkeypatch.setattr(handoff.os, "link", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        handoff.take_from_fleet(src, dst, "abc")
    assert {p.name: p.read_bytes() for p in src.iterdir()} == files and len(list(dst.iterdir())) == 2
    monkeypatch.setattr(handoff.os, "link", link)
    assert handoff.take_from_fleet(src, dst, "abc")
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == files and not any(src.iterdir())


def test_a_layer_computes_each_shape_of_a_grid_once_in_consecutive_rows():
    """Issue 22: every layer of a stacked grid is computed at its models' own widths, one product per shape
    (a `LayerClass`) and one activation per width and activation: a grid of widths 16-64 padded to the
    widest did three times the arithmetic of its models."""
    from fhnkit.nets.mlp import MLP, make_spec

    configs = [("silu", 16), ("tanh", 32), ("silu", 64), ("sin", 32)]
    torch.manual_seed(0)
    nets = [MLP(make_spec(["t", "u0"], ["u"], list(layers), [0, 0], [1, 1], [0], [1]))
            for depth in (1, 2, 3) for layers in itertools.product(configs, repeat=depth)][::-1]
    ordered = [nets[i] for i in stack_order(nets)]
    net = StackedMLP(ordered)
    for d, classes in enumerate(net.layer_classes):
        keys = [(net.rows[d][r], c) for c in classes for r in range(c.rows.start, c.rows.stop)]
        assert [r for r, _ in keys] == net.rows[d] and sorted(net.rows[d]) == list(range(len(nets)))
        shapes = [(c.n_in, c.n_out, c.through, c.activation) for c in classes]
        assert len(shapes) == len(set(shapes))  # each shape in one run of rows
        for model, c in keys:  # ... which is its model's
            own = ordered[model].spec["layers"]
            if d == len(net.layer_classes) - 1:
                assert c.n_out == 1 and c.n_in == (own[-1][1] if own else 2) and c.activation is None
            elif d < len(own):
                assert (c.n_out, c.activation, c.through) == (own[d][1], own[d][0], False)
            else:
                assert c.through and c.n_in == c.n_out == own[-1][1]
        if d < len(net.activation_names):  # one activation per width and activation
            runs = [name for name, _ in net.activation_names[d]]
            widths = {(c.n_out, c.activation) for c in classes}
            assert len(runs) == len(widths)
    assert net.layer_inputs[0] is None  # the first layer's rows are the models' order
    x = torch.rand((len(nets), 5, 2))
    with torch.no_grad():  # and each model computes what it computes alone
        assert torch.allclose(net(x), torch.stack([m(x[i]) for i, m in enumerate(ordered)]), atol=1e-6)


class HostTraffic(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the operations that make a GPU wait for its host or feed it from the host: a tensor read back
    as a Python number (`_local_scalar_dense`: .item(), float(t), `if t`), a tensor made from host data
    (`lift_fresh`: torch.tensor(...)) and a copy between devices. On a CPU nothing waits, but the same
    calls are made: counting them here shows what a GPU run would synchronise on."""

    KINDS = ("_local_scalar_dense", "lift_fresh", "_to_copy")

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        moves = name != "_to_copy" or kwargs.get("device", args[0].device) != args[0].device  # not a dtype cast
        if name in self.KINDS and moves:
            self.calls.append(name)
        return func(*args, **kwargs)


@pytest.mark.parametrize("classes", [("ddnn",), ("pinn",)], ids=["data terms (by hand)", "PINN terms (autograd)"])
def test_no_host_traffic_per_iteration_inside_a_block(grid, classes):
    """Issue 22: a group trains its block of iterations without waiting for the host: no value read back,
    no tensor made from host data, no copy between devices, however long the block (batches are drawn on
    the device by counter; the Adam step count made anew from a Python number each iteration, and the
    batches drawn on the host and copied per block, were such traffic)."""
    specs, data = grid
    runs = runs_of([s for s in specs if s["class"] in classes], data)
    groups = [g for g in make_groups(runs) if isinstance(g, StackedGroup)]
    assert groups
    for group in groups:
        group.advance(1)  # the first block allocates and builds what later blocks reuse
        counts = []
        for n in (1, 6):
            with HostTraffic() as traffic:
                group.advance(n)
            counts.append(sorted(traffic.calls))
        assert counts == [[], []], f"host traffic inside a block: {counts}"


@pytest.mark.parametrize("classes", [("ddnn",), ("pinn",)], ids=["data terms (by hand)", "PINN terms (autograd)"])
def test_an_iteration_reads_and_writes_its_state_in_place(grid, classes):
    """A CUDA graph replays an iteration on the memory it was captured on: every tensor of a group's
    training state must stay where it is from block to block (GPU-only replay is in the GPU
    check; this is what makes it correct)."""
    specs, data = grid
    group = next(g for g in make_groups(runs_of([s for s in specs if s["class"] in classes], data))
                 if isinstance(g, StackedGroup))

    def addresses():
        state = [group.net.flat, group.net.flat_grad, group.exp_avg, group.exp_avg_sq, group._adam_step,
                 group._counter, group._values, *[getattr(group, n) for n in group._STATE]]
        state.append(group._draw)
        return [t.data_ptr() for t in state]

    group.advance(5)
    before = addresses()
    group.advance(5)
    group.advance(3)  # a shorter block reuses the buffers
    assert addresses() == before
    assert int(group._counter) == 3 and group.adam_steps == 13 and float(group._adam_step) == 13.0


def test_a_group_validates_its_models_at_once_as_each_alone(grid):
    """One stacked evaluation and one read back for a group's validation on a GPU (2,304 models validated
    one by one took longer than their 100 iterations on an H200): the same mean and max as each run's own,
    which a CPU computes (`validation_errors`)."""
    specs, data = grid
    for group in make_groups(runs_of(specs, data)):
        group.advance(3)
        group.collect()
        together = group.stacked_validation_errors()
        alone = [run.validate() for run in group.runs]
        assert group.validation_errors() == alone  # on a CPU
        assert np.allclose(together, alone, rtol=1e-5, atol=1e-7), (together, alone)
        assert np.allclose(group.stacked_validation_errors(max_values=64), together, rtol=1e-6)  # in chunks


def _with_terms_changed(runs):
    """Half of the PINNs without their initial-state term, half of the DDNNs with a second data term of another
    batch size and weight (as a resampled high-error term adds): models that differ in loss terms."""
    from fhnkit.training.terms import DataTerm

    for k, run in enumerate(runs):
        if k % 2:
            continue
        if run.spec.cls == "pinn":
            i = [t.name for t in run.terms].index("initial")
            for seq in (run.terms, run.seeds, run.samplers):
                del seq[i]
        else:
            data = run.terms[0]
            extra = DataTerm(data.inputs[:40], data.targets[:40], batch_size=24, weight=0.5, name="data_resampled")
            run.terms.append(extra)
            run.seeds.append(run.spec.torch_seed + len(run.seeds) + 1)
            run.samplers.append(DataTerm.batch_sampler([extra], [run.seeds[-1]]))
    return runs


def test_models_with_other_loss_terms_share_a_group_and_each_ends_as_alone(grid, capsys):
    """Issue 22: a group computes the union of its models' terms, each model's own weighted as alone and the
    others 0; a model's history has its own terms' columns only."""
    specs, data = grid
    specs = [s for s in specs if s["depth"] == 2][::2]
    alone_runs, fleet_runs = _with_terms_changed(runs_of(specs, data)), _with_terms_changed(runs_of(specs, data))
    groups = make_groups(fleet_runs)
    assert len(groups) == 2 and all(isinstance(g, StackedGroup) for g in groups)  # data-only, and the others
    assert {len({tuple(t.name for t in r.terms) for r in g.runs}) for g in groups} == {2}
    for run in alone_runs:
        fit(run, progress=False)
    histories = fit_fleet(fleet_runs, groups)
    worst = 0.0
    for a, f, history in zip(alone_runs, fleet_runs, histories, strict=True):
        worst = max(worst, max(float((weights(a)[k] - weights(f)[k]).abs().max()) for k in weights(a)))
        assert {c for c in history.columns if c.startswith("loss_")} == {f"loss_{t.name}" for t in f.terms} | {
            "loss_total"}
    assert worst < BOUND
    with capsys.disabled():
        print(f"\nmixed loss terms, fleet vs alone after {ITERATIONS} iterations, {len(specs)} models: "
              f"max |dw| = {worst:.2e}")
