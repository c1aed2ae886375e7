"""Tests of training/validation data sets (fhnkit.datasets.simulate) and parameter sampling
(fhnkit.datasets.sampling)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fhnkit
from fhnkit.artifacts import read_parquet_meta
from fhnkit.cell.model import FHNParams
from fhnkit.datasets.sampling import sample_box
from fhnkit.datasets.simulate import make_dataset, write_dataset
from fhnkit.plan.config import validate_config
from fhnkit.solvers.cpu import euler
from fhnkit.solvers.cuda import CudaUnavailable, cuda_available

GRID = {"layers": [1], "layer_configs": [["tanh", 4]]}
DT = 0.01


def config(seed=2026, dt=DT, method="euler", **studies) -> dict:
    solver = {"dt": dt, "precision": "float64", "method": method, "backend": "cpu"}
    return validate_config({"seed": seed, "data_solver": solver, "studies": studies})


def study_a(**kw):
    return {"problem": "A", "t_max": 20, "train": {"n": 10}, "val": {"n": 30}, "grid": GRID} | kw


def study_b(**kw):
    return {"problem": "B", "i_app": 0.0, "t_max": 50, "times_per_trajectory": 11, "train": {"n": 6},
            "val": {"n": 5}, "grid": GRID} | kw


def study_c(**kw):
    return {"problem": "C", "t_max": 50, "times_per_trajectory": 11, "train": {"n": 6}, "val": {"n": 5},
            "grid": GRID} | kw


DEFAULT_PARAMS = FHNParams()


def plain_euler(u, w, i_app, dt, n_steps, p=DEFAULT_PARAMS):
    """Independent scalar Euler loop (SPEC.md section 1), not using fhnkit.solvers.cpu."""
    for _ in range(n_steps):
        du = p.k * (u * (u - p.a) * (1.0 - u) - w + i_app)
        dw = p.epsilon * (p.beta * u - p.gamma * w)
        u, w = u + dt * du, w + dt * dw
    return u, w


# --------------------------------------------------------------------------- columns, rows, metadata


def test_problem_a_columns_rows_and_values():
    cfg = config(A=study_a())
    df, meta = make_dataset(cfg, "A", "train")
    assert list(df.columns) == ["traj", "t", "U", "W"]
    assert len(df) == 10 and (df["traj"] == 0).all()
    assert df["t"].between(0, 20).all() and df["t"].is_monotonic_increasing
    steps = np.rint(df["t"].to_numpy() / DT).astype(int)
    np.testing.assert_allclose(steps * DT, df["t"], rtol=0, atol=1e-12)  # snapped to solver steps
    _, U, W = euler([0.5], [0.0], [0.0], FHNParams(), DT, 2000)
    np.testing.assert_array_equal(df["U"], U[steps, 0])
    np.testing.assert_array_equal(df["W"], W[steps, 0])
    u, w = plain_euler(0.5, 0.0, 0.0, DT, int(steps[0]))
    assert df["U"].iloc[0] == pytest.approx(u, rel=1e-12, abs=1e-14)
    assert df["W"].iloc[0] == pytest.approx(w, rel=1e-12, abs=1e-14)
    assert meta["problem"] == "A" and meta["inputs"] == ["t"] and meta["outputs"] == ["U", "W"]


@pytest.mark.parametrize("i_app, t_max", [(0.0, 50), (0.1, 50), (0.1, 5)])
def test_problem_b_columns_rows_and_values(i_app, t_max):
    cfg = config(B=study_b(i_app=i_app, t_max=t_max))
    df, meta = make_dataset(cfg, "B", "train")
    assert list(df.columns) == ["traj", "t", "U0", "W0", "U", "W"]
    assert len(df) == 6 * 11
    assert df.groupby("traj").size().tolist() == [11] * 6
    first = df[df["traj"] == 0]
    np.testing.assert_allclose(first["t"], np.linspace(0, t_max, 11), atol=1e-12)
    assert df["U0"].between(0, 1).all() and df["W0"].between(0, 0.18).all()
    at_zero = df[df["t"] == 0]
    np.testing.assert_array_equal(at_zero["U"], at_zero["U0"])  # the initial state is stored as t = 0
    np.testing.assert_array_equal(at_zero["W"], at_zero["W0"])
    n_steps = round(t_max / DT)
    for traj in (0, 5):
        rows = df[df["traj"] == traj]
        u0, w0 = rows["U0"].iloc[0], rows["W0"].iloc[0]
        _, U, W = euler([u0], [w0], [i_app], FHNParams(), DT, n_steps, n_steps // 10)
        np.testing.assert_array_equal(rows["U"], U[:, 0])
        np.testing.assert_array_equal(rows["W"], W[:, 0])
    u, w = plain_euler(df["U0"].iloc[0], df["W0"].iloc[0], i_app, DT, n_steps)
    assert first["U"].iloc[-1] == pytest.approx(u, rel=1e-10, abs=1e-12)
    assert first["W"].iloc[-1] == pytest.approx(w, rel=1e-10, abs=1e-12)
    assert meta["i_app"] == i_app and meta["save_step"] == pytest.approx(t_max / 10)


def test_problem_c_uses_the_k_to_i_app_map():
    cfg = config(C=study_c())
    df, meta = make_dataset(cfg, "C", "train")
    assert list(df.columns) == ["traj", "t", "U0", "W0", "K", "U", "W"]
    assert len(df) == 6 * 11 and df["K"].between(0, 1).all()
    assert meta["k_to_i_app"] == [0.08, 0.04] and meta["i_app"] is None
    assert meta["inputs"] == ["t", "U0", "W0", "K"]
    for traj in range(6):
        rows = df[df["traj"] == traj]
        u0, w0, k = rows[["U0", "W0", "K"]].iloc[0]
        _, U, W = euler([u0], [w0], [0.08 + 0.04 * k], FHNParams(), DT, 5000, 500)
        np.testing.assert_array_equal(rows["U"], U[:, 0])
        np.testing.assert_array_equal(rows["W"], W[:, 0])
    # and a different map gives different data
    other = config(C=study_c(k_to_i_app=[0.0, 0.0]))
    assert not np.array_equal(make_dataset(other, "C", "train")[0]["U"], df["U"])


def test_times_per_trajectory_must_divide_the_steps():
    with pytest.raises(ValueError, match="times_per_trajectory"):  # refused by the config's validation
        make_dataset(config(B=study_b(t_max=5, times_per_trajectory=8)), "B", "train")  # 500 steps, 7 intervals


def test_bad_split_name():
    with pytest.raises(ValueError, match="split"):
        make_dataset(config(B=study_b()), "B", "test")


@pytest.mark.parametrize("name, study", [("A", study_a()), ("B", study_b(i_app=0.1)), ("C", study_c())])
def test_parquet_metadata(tmp_path, name, study):
    cfg = config(**{name: study})
    df = write_dataset(cfg, name, "val", tmp_path / "val.parquet")
    back = pd.read_parquet(tmp_path / "val.parquet")
    pd.testing.assert_frame_equal(back, df)
    meta = read_parquet_meta(tmp_path / "val.parquet")
    assert meta["problem"] == name and meta["study"] == name and meta["split"] == "val"
    assert meta["model"] == {"k": 10.0, "a": 0.4, "epsilon": 0.2, "beta": 0.2, "gamma": 0.8}
    assert meta["dt"] == DT
    assert meta["data_solver"] == {"dt": DT, "precision": "float64", "method": "euler", "ran_on": "cpu"}
    assert "save_step" in meta
    if name != "A":
        assert meta["save_step"] == pytest.approx(5.0)
    assert meta["sampler"] == "uniform" and meta["n"] == study["val"]["n"]
    assert isinstance(meta["seed"], int) and meta["root_seed"] == 2026
    assert meta["fhnkit_version"] == fhnkit.__version__
    assert isinstance(meta["config_hash"], str) and len(meta["config_hash"]) == 16
    changed = config(**{name: study | {"t_max": 10}})
    assert make_dataset(changed, name, "val")[1]["config_hash"] != meta["config_hash"]


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name, study", [("A", study_a()), ("B", study_b()), ("C", study_c())])
def test_same_config_gives_byte_identical_files(tmp_path, name, study):
    for split in ("train", "val"):
        write_dataset(config(**{name: study}), name, split, tmp_path / f"1_{split}.parquet")
        write_dataset(config(**{name: study}), name, split, tmp_path / f"2_{split}.parquet")
        assert (tmp_path / f"1_{split}.parquet").read_bytes() == (tmp_path / f"2_{split}.parquet").read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("name, study, col", [("A", study_a(), "t"), ("B", study_b(), "U0"),
                                              ("C", study_c(), "K")])
def test_different_seed_gives_different_data(name, study, col):
    a = make_dataset(config(seed=1, **{name: study}), name, "train")[0]
    b = make_dataset(config(seed=2, **{name: study}), name, "train")[0]
    assert not np.array_equal(a[col].to_numpy(), b[col].to_numpy())


@pytest.mark.parametrize("backend", ["auto", "cuda"])
def test_where_the_data_are_computed_is_provenance_not_identity(backend):
    """data_solver.backend says where the numbers are computed (CUDA and numba give the same bits): it changes
    neither the rows, nor the config hash, nor the determinants that key the rule's params and cache."""
    from fhnkit.plan import data_determinants, expand_study

    base = config(B=study_b())
    other = json.loads(json.dumps(base))
    other["data_solver"]["backend"] = backend
    assert data_determinants(other, "B") == data_determinants(base, "B")
    assert [s["config_hash"] for s in expand_study(other, "B")] == [s["config_hash"] for s in expand_study(base, "B")]
    if backend == "cuda" and not cuda_available(exact=True)[0]:  # asked for, and cannot run here: said so
        with pytest.raises(CudaUnavailable, match="backend 'cuda' was asked for"):
            make_dataset(other, "B", "train")
        return
    rows, meta = make_dataset(other, "B", "train")
    base_rows, base_meta = make_dataset(base, "B", "train")
    pd.testing.assert_frame_equal(rows, base_rows, check_exact=True)
    assert meta["config_hash"] == base_meta["config_hash"]
    assert meta["data_solver"]["ran_on"] in ("cpu", "cuda") and "backend" not in meta["data_solver"]
    # what does change the numbers changes the identity
    precise = json.loads(json.dumps(base))
    precise["data_solver"]["precision"] = "float32"
    assert make_dataset(precise, "B", "train")[1]["config_hash"] != base_meta["config_hash"]


def test_data_seed_does_not_depend_on_study_name():
    cfg = config(X=study_b(), Y=study_b())
    pd.testing.assert_frame_equal(make_dataset(cfg, "X", "train")[0], make_dataset(cfg, "Y", "train")[0])


# --------------------------------------------------------------------------- train / val separation


def _keys(df, cols):
    return set(map(tuple, df[cols].drop_duplicates().to_numpy().tolist()))


@pytest.mark.parametrize("train, val, n_val", [
    ({"n": 10}, {"n": 30}, None),
    ({"n": 11, "sampler": "grid"}, {"n": 21, "sampler": "grid"}, 21),  # val on odd steps: keeps all n
    ({"n": 10, "sampler": "grid"}, {"n": 10, "sampler": "grid"}, None),  # identical lattices
    ({"n": 30, "sampler": "lhs"}, {"n": 30, "sampler": "grid"}, None),
])
def test_problem_a_train_and_val_share_no_time(train, val, n_val):
    cfg = config(A=study_a(train=train, val=val))
    tr, va = make_dataset(cfg, "A", "train")[0], make_dataset(cfg, "A", "val")[0]

    def steps(df):
        return set(np.rint(df["t"].to_numpy() / DT).astype(int).tolist())

    assert not steps(tr) & steps(va)
    if n_val is not None:
        assert len(va) == n_val


@pytest.mark.parametrize("make, cols", [(study_b, ["U0", "W0"]), (study_c, ["U0", "W0", "K"])])
@pytest.mark.parametrize("train, val, n_val", [
    ({"n": 6}, {"n": 5}, 5),
    ({"n": 4, "sampler": "grid"}, {"n": 9, "sampler": "grid"}, None),  # 2x2 and 3x3 (2x2x2, 3x3x3 for C)
    ({"n": 8, "sampler": "lhs"}, {"n": 8, "sampler": "lhs"}, 8),
])
def test_problems_b_c_train_and_val_share_no_initial_condition(make, cols, train, val, n_val):
    cfg = config(S=make(t_max=5, times_per_trajectory=6, train=train, val=val))
    tr, va = make_dataset(cfg, "S", "train")[0], make_dataset(cfg, "S", "val")[0]
    assert not _keys(tr, cols) & _keys(va, cols)
    assert len(_keys(tr, cols)) == train["n"]
    if n_val is not None:
        assert va["traj"].nunique() == n_val


def test_overlapping_lattices_drop_only_the_shared_points():
    cfg = config(S=study_b(t_max=5, times_per_trajectory=6, train={"n": 9, "sampler": "grid"},
                           val={"n": 25, "sampler": "grid"}))  # 3x3 inside 5x5
    va = make_dataset(cfg, "S", "val")[0]
    assert va["traj"].nunique() == 25 - 9


@pytest.mark.parametrize("name, make", [("A", study_a), ("B", study_b)])
def test_identical_grid_splits_do_not_give_an_empty_validation_set(name, make):
    cfg = config(**{name: make(train={"n": 9, "sampler": "grid"}, val={"n": 9, "sampler": "grid"})})
    if name == "A":  # validation times sit on odd solver steps, training times on even ones
        assert len(make_dataset(cfg, name, "val")[0]) == 9
        return
    with pytest.raises(ValueError, match="9 of the 9 validation parameter sets are also training sets"):
        make_dataset(cfg, name, "val")


def test_b_studies_differing_in_training_size_share_validation_set():
    cfg = config(scarce=study_b(train={"n": 3}), dense=study_b(train={"n": 40}))
    va_s = make_dataset(cfg, "scarce", "val")[0]
    va_d = make_dataset(cfg, "dense", "val")[0]
    pd.testing.assert_frame_equal(va_s, va_d)
    assert not make_dataset(cfg, "scarce", "train")[0].equals(make_dataset(cfg, "dense", "train")[0])


def test_a_scarce_and_dense_share_validation_set():
    cfg = config(scarce=study_a(train={"n": 10}, val={"n": 200}),
                 dense=study_a(train={"n": 1000}, val={"n": 200}))
    pd.testing.assert_frame_equal(make_dataset(cfg, "scarce", "val")[0], make_dataset(cfg, "dense", "val")[0])


# --------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("n, d", [(1, 1), (7, 1), (20, 3), (50, 4)])
def test_lhs_one_point_per_stratum_per_dimension(n, d):
    lo, hi = np.arange(d) - 1.0, np.arange(d) + 2.5
    x = sample_box(n, lo, hi, "lhs", seed=3)
    assert x.shape == (n, d) and x.dtype == np.float64
    unit = (x - lo) / (hi - lo)
    for j in range(d):
        assert sorted(np.floor(unit[:, j] * n).astype(int).tolist()) == list(range(n))


@pytest.mark.parametrize("n", [1, 2, 5, 11])
def test_grid_in_one_dimension_is_linspace(n):
    x = sample_box(n, [2.0], [4.0], "grid", seed=0)
    if n == 1:
        assert x.shape == (1, 1) and 2.0 <= x[0, 0] <= 4.0
    else:
        np.testing.assert_allclose(x[:, 0], np.linspace(2.0, 4.0, n), rtol=0, atol=1e-15)


def test_grid_in_two_dimensions_is_a_lattice():
    x = sample_box(9, [0.0, 0.0], [1.0, 0.18], "grid", seed=0)
    assert _keys(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"]) == {
        (a, b) for a in np.linspace(0, 1, 3) for b in np.linspace(0, 0.18, 3)}


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "grid"])
def test_samplers_seeded_and_inside_the_box(sampler):
    lo, hi = [0.0, 0.0, 0.0], [50.0, 1.0, 0.18]
    a = sample_box(64, lo, hi, sampler, seed=11)
    np.testing.assert_array_equal(a, sample_box(64, lo, hi, sampler, seed=11))
    assert a.shape == (64, 3) and (a >= lo).all() and (a <= hi).all()
    if sampler != "grid":
        assert not np.array_equal(a, sample_box(64, lo, hi, sampler, seed=12))


def test_unknown_sampler():
    with pytest.raises(ValueError, match="sobol"):
        sample_box(4, [0.0], [1.0], "sobol", seed=0)


def test_problem_a_dense_set_has_n_rows():
    cfg = config(dt=0.001, A=study_a(train={"n": 1000}))
    assert len(make_dataset(cfg, "A", "train")[0]) == 1000


def test_rk4_targets_are_accurate_to_1e_6_against_a_tight_reference():
    from scipy.integrate import solve_ivp

    from fhnkit.cell.model import rhs

    cfg = config(method="rk4", B=study_b(i_app=0.1, train={"n": 4}))
    df = make_dataset(cfg, "B", "train")[0]
    p = FHNParams()
    for traj, rows in df.groupby("traj"):
        u0, w0 = rows["U0"].iloc[0], rows["W0"].iloc[0]
        ref = solve_ivp(lambda t, y: rhs(y[0], y[1], 0.1, p), (0, 50), [u0, w0], method="DOP853",
                        rtol=1e-12, atol=1e-13, t_eval=rows["t"].to_numpy())
        err = np.abs(rows[["U", "W"]].to_numpy() - ref.y.T).max()
        assert err < 1e-6, (traj, err)  # measured ~1e-8 at dt = 0.01; Euler at 0.001 is ~1e-3
