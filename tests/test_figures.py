"""Tests of the figures of fhnkit.analysis: PNGs decode with the documented size, and plot the right things
(real networks on real solver data where a figure evaluates models)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit import analysis as figures
from fhnkit.analysis import SUMMARY_COLUMNS, plotting, prediction_figures
from fhnkit.cell.problems import window_edges
from fhnkit.datasets.simulate import make_dataset
from fhnkit.nets import build_network, make_spec, save_model
from fhnkit.nets.evaluate import sample_errors
from fhnkit.nets.windows import windowed_spec
from fhnkit.plan.config import validate_config
from test_analysis import fake_summary


def expected_shape(n_panels: int, panel_w: float = plotting.PANEL_W) -> tuple[int, int]:
    width, height = plotting.figure_size(n_panels, panel_w)
    return round(height * plotting.DPI), round(width * plotting.DPI)


def check_png(path, n_panels: int, panel_w: float = plotting.PANEL_W) -> np.ndarray:
    """The PNG exists, is not tiny, decodes to the expected size and is not blank."""
    assert path.exists() and path.stat().st_size > 5_000
    image = mpimg.imread(path)
    assert image.shape[:2] == expected_shape(n_panels, panel_w)
    assert image[..., :3].std() > 0.01
    return image


class Captured(list):
    """Texts of every figure saved (titles, labels, legend entries, notes); `figures` holds the figures, and
    `legends_inside` the legends that overlap an axes once laid out."""

    def __init__(self):
        super().__init__()
        self.figures, self.renderers, self.legends_inside = [], [], []


@pytest.fixture
def captured(monkeypatch):
    """Spies on the save step every figure goes through (`fhnkit.analysis.plotting.save_figure`)."""
    texts = Captured()
    save = plotting.save_figure

    def spy(fig, path):
        texts.extend(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))
        renderer = fig.canvas.get_renderer()  # (closing the figure detaches its canvas)
        out = save(fig, path)  # lays the figure out
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        texts.legends_inside += [lg for lg in legends if any(lg.get_window_extent(renderer).overlaps(b) for b in boxes)]
        texts.figures.append(fig)
        texts.renderers.append(renderer)
        return out

    monkeypatch.setattr(plotting, "save_figure", spy)
    return texts


def grid_with_failures() -> pd.DataFrame:
    df = pd.concat([fake_summary(studies=("A_scarce",)),
                    fake_summary(seed=1, studies=("B_S",), classes=("ddnn",))], ignore_index=True)
    failed = df.index[:3]
    df.loc[failed, ["mean_err", "max_err"]] = np.nan
    df.loc[failed, "status"] = "failed"
    df.loc[df.index[5:8], ["inference_time_s", "solver_time_s", "speedup"]] = np.nan
    return df


def history(n: int = 20, physics: bool = True) -> pd.DataFrame:
    it = np.arange(n) * 100
    h = pd.DataFrame({"iteration": it, "lr": 1e-3, "loss_total": 1.0 / (it + 1),
                      "loss_data": 0.5 / (it + 1), "val_mean": 0.1 / np.sqrt(it + 1),
                      "val_max": 1.0 / np.sqrt(it + 1), "iter_time_s": 1e-3, "wall_time_s": it * 1e-3})
    if physics:
        h["loss_physics"] = 0.3 / (it + 1)
    h.loc[3, "val_mean"] = np.nan
    return h


def test_accuracy_vs_neurons(tmp_path, captured):
    path = figures.accuracy_vs_neurons(grid_with_failures(), tmp_path / "f" / "acc.png")
    check_png(path, n_panels=2)
    assert "A_scarce (3 failed)" in captured and "B_S" in captured
    assert {"bowtie", "rectangle", "pinn", "ddnn"} <= set(captured)


def test_accuracy_vs_neurons_single_model_and_all_failed(tmp_path, captured):
    df = fake_summary().head(1)
    check_png(figures.accuracy_vs_neurons(df, tmp_path / "one.png"), n_panels=1)
    failed = df.assign(study="X", status="failed", mean_err=np.nan)
    path = figures.accuracy_vs_neurons(pd.concat([df, failed]), tmp_path / "two.png")
    check_png(path, n_panels=2)
    assert "no successful models" in captured


def test_accuracy_vs_neurons_wraps_many_studies(tmp_path, captured):
    studies = ("A_scarce", "A_dense", "B_S", "B_C")
    df = pd.concat([fake_summary(seed=i, studies=(s,)) for i, s in enumerate(studies)])
    image = check_png(figures.accuracy_vs_neurons(df, tmp_path / "four.png"), n_panels=4)
    assert image.shape[0] == round(2 * plotting.PANEL_H * plotting.DPI)  # two rows of panels
    assert set(studies) <= set(captured)


def test_training_curves(tmp_path, captured):
    histories = {"pinn_a": history(), "ddnn_b": history(physics=False)}
    check_png(figures.training_curves(histories, tmp_path / "c.png", "A_scarce"), n_panels=2)
    assert {"pinn_a", "ddnn_b", "loss_total", "loss_physics", "val_mean", "val_max"} <= set(captured)
    assert {"model", "loss term (left)", "validation error (right)", "A_scarce"} <= set(captured)
    # the legends sit in the right margin, clear of the data
    assert len(captured.figures[0].legends) == 3 and not captured.legends_inside


def test_training_curves_many_terms_have_distinct_styles_and_fit_the_margin(tmp_path, captured):
    h = history()
    for term in ("initial", "data_region", "physics_region", "data_resampled", "continuity"):
        h[f"loss_{term}"] = 0.1 / (h["iteration"] + 1)
    histories = {f"pinna_silu64-tanh32-silu64_w5_bs128_s{i}": h for i in range(8)}
    check_png(figures.training_curves(histories, tmp_path / "m.png", "many"), n_panels=2)
    fig = captured.figures[0]
    assert len({str(ls) for ls in plotting.LINE_STYLES}) == 8  # one style per term
    assert len({t for t in captured if t.startswith("loss_")}) == 8
    assert all(lg.get_window_extent(captured.renderers[0]).y0 >= -1 for lg in fig.legends)  # none below the figure
    assert not captured.legends_inside


def test_training_curves_of_a_study_whose_every_model_failed(tmp_path, captured):
    df = fake_summary().head(3).assign(study="diverges", status="failed", mean_err=np.nan)
    out = figures.study_training_curves(df, "diverges", {}, tmp_path / "e.png")
    check_png(out, n_panels=1)
    assert any("every model of diverges failed" in t and "(3 of 3 diverged)" in t for t in captured)
    assert "no loss recorded" not in captured


def test_variant_names_class_region_and_windows():
    df = pd.DataFrame({"class": ["ddnn", "ddnn", "pinn", "pinn", "itnn"], "region": [False, True, True, np.nan, False],
                       "windows": [1, 1, 5, np.nan, 1]})
    assert list(figures.variant(df)) == ["ddnn", "ddnna", "pinna, 5 windows", "pinn", "itnn"]


def test_select_and_study_training_curves(tmp_path):
    df = fake_summary()
    df["region"] = df.index < 5  # a DDNNa variant: its own best two
    chosen = figures.select_curve_models(df, "A_scarce", per_class=2)
    best = df.assign(variant=figures.variant).sort_values("mean_err").groupby("variant").head(2)["model"]
    assert sorted(chosen) == sorted(best) and len(chosen) == 6
    paths = {}
    for model in chosen:
        paths[model] = tmp_path / f"{model}.parquet"
        history().to_parquet(paths[model])
    out = figures.study_training_curves(df, "A_scarce", paths, tmp_path / "s.png")
    check_png(out, n_panels=2)


def test_error_vs_inference(tmp_path, captured):
    check_png(figures.error_vs_inference(grid_with_failures(), tmp_path / "ei.png"), 1, plotting.WIDE_PANEL_W)
    assert "Euler, A_scarce: 0.5 s" in captured
    assert "Euler, B_S: 0.5 s" in captured


def test_error_vs_inference_without_timings(tmp_path, captured):
    df = fake_summary().head(1).assign(inference_time_s=np.nan, solver_time_s=np.nan)
    check_png(figures.error_vs_inference(df, tmp_path / "n.png"), 1, plotting.WIDE_PANEL_W)
    assert "no timed, successful models" in captured


# --------------------------------------------------------------------------- predictions vs solver


def test_high_error_top_fraction_takes_the_highest_mean_errors_first():
    mean = np.array([0.1, 0.5, 0.2, 0.9, 0.3] * 6)  # 30 trajectories
    chosen = figures.high_error(mean, mean, "top_fraction", q=0.1)
    assert len(chosen) == 3  # 0.1 x 30, not ceil(3.0000000000000004)
    assert list(mean[chosen]) == [0.9, 0.9, 0.9] and list(chosen) == [3, 8, 13]  # ties: first come first
    assert list(figures.high_error(mean[:5], mean[:5], q=0.05)) == [3]  # at least one
    assert list(figures.high_error(mean[:5], mean[:5], q=1.0)) == [3, 1, 4, 2, 0]
    assert figures.high_error([], [], q=0.05).size == 0


def test_high_error_of_max_is_the_thesis_rule_and_nan_ranks_highest():
    mean = np.array([0.10, 0.30, 0.05, 0.20])
    peak = np.array([0.50, 0.60, 0.95, 1.00])  # the third has a low mean but a point at 95% of the largest
    assert list(figures.high_error(mean, peak, "of_max", of_max=0.8)) == [3, 2]
    assert list(figures.high_error(mean, peak, "of_max", of_max=0.5)) == [1, 3, 0, 2]
    with_nan = np.array([0.1, np.nan, 0.3])
    assert list(figures.high_error(with_nan, with_nan, "top_fraction", q=0.3)) == [1]
    assert list(figures.high_error(with_nan, with_nan, "of_max", of_max=0.8)) == [1]
    with pytest.raises(ValueError, match="top_fraction or of_max"):
        figures.high_error(mean, peak, "threshold")


def study_config(problem: str) -> dict:
    study = {"problem": problem, "i_app": 0.0, "t_max": 10, "train": {"n": 10, "sampler": "grid"},
             "val": {"n": 80 if problem == "A" else 24},
             "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "batch_size": [16]}}
    if problem != "A":
        study["times_per_trajectory"] = 21
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


def network(inputs, seed: int, windows: int = 1, t_max: float = 10.0):
    """An untrained network (seeded) of the given inputs, saved and loaded as the workflow does."""
    torch.manual_seed(seed)
    lo, hi = [0.0] + [0.0] * (len(inputs) - 1), [t_max] + [1.0] * (len(inputs) - 1)
    if windows == 1:
        spec = make_spec(inputs, ["U", "W"], [["tanh", 8]], lo, hi, [0.3, 0.05], [0.5, 0.1])
    else:
        spec = windowed_spec(inputs, ["U", "W"], [["tanh", 8]], lo, hi, window_edges(t_max, windows),
                             [([-0.2, 0.0], [1.0, 0.2])] * windows)
    return build_network(spec)


def save_networks(tmp_path, rows, inputs) -> dict:
    dirs = {}
    for i, row in enumerate(rows):
        dirs[row["model"]] = tmp_path / row["model"]
        save_model(network(inputs, i, row.get("windows", 1)), dirs[row["model"]])
    return dirs


def summary_of(rows, study="S") -> pd.DataFrame:
    base = {"study": study, "region": False, "windows": 1, "status": "ok", "batch_size": 16, "iter_time_s": 1e-3}
    return pd.DataFrame([{**base, **row} for row in rows], columns=SUMMARY_COLUMNS)


B_MODELS = [
    {"model": "ddnn_tanh8_bs16_s0", "class": "ddnn", "mean_err": 0.02},
    {"model": "ddnn_tanh8_bs16_s1", "class": "ddnn", "mean_err": 0.01},  # the best plain DDNN
    {"model": "ddnna_tanh8_bs16_s0", "class": "ddnn", "region": True, "mean_err": 0.03},
    {"model": "pinn_tanh8_w2_bs16_s0", "class": "pinn", "windows": 2, "mean_err": 0.04},
    {"model": "pinn_tanh8_bs16_s0", "class": "pinn", "status": "failed", "mean_err": np.nan},
    {"model": "itnn_tanh8_bs16_s0", "class": "itnn", "mean_err": 0.001},  # has its own rollout figure
]


def test_select_prediction_models_takes_the_best_continuous_model_of_each_variant():
    chosen = figures.select_prediction_models(summary_of(B_MODELS), "S")
    assert list(zip(chosen["variant"], chosen["model"], strict=True)) == [
        ("ddnn", "ddnn_tanh8_bs16_s1"), ("ddnna", "ddnna_tanh8_bs16_s0"), ("pinn, 2 windows", "pinn_tanh8_w2_bs16_s0")]


def test_validation_predictions_are_eq_3_3_per_point(tmp_path):
    val, _ = make_dataset(study_config("B"), "S", "val")
    model = network(["t", "U0", "W0"], seed=3)
    pred = figures.validation_predictions(model, val.sample(frac=1, random_state=0))
    assert list(pred[["traj", "t"]].itertuples(index=False)) == sorted(pred[["traj", "t"]].itertuples(index=False))
    x = torch.tensor(pred[["t", "U0", "W0"]].to_numpy(np.float32))
    y = torch.tensor(pred[["U", "W"]].to_numpy(np.float32))
    np.testing.assert_allclose(pred["err"], sample_errors(model, x, y), rtol=1e-5, atol=1e-6)
    errors = figures.unit_errors(pred)
    assert len(errors) == 24 and {"U0", "W0", "mean_err", "max_err"} <= set(errors)
    np.testing.assert_allclose(errors["mean_err"], pred.groupby("traj")["err"].mean())


def predictions_shape(n_models: int) -> tuple[int, int]:
    """Two rows of two panels per model, a gap between models, and the legend column."""
    height = plotting.PANEL_H * (2 * n_models + prediction_figures.BLOCK_GAP * (n_models - 1))
    return round(height * plotting.DPI), round(plotting.figure_size(2)[0] * plotting.DPI)


def test_predictions_of_problem_b_a_row_per_class_variant(tmp_path, captured):
    val, _ = make_dataset(study_config("B"), "S", "val")
    dirs = save_networks(tmp_path, [r for r in B_MODELS if r["class"] != "itnn"], ["t", "U0", "W0"])
    highlight = {"rule": "top_fraction", "q": 0.1, "of_max": 0.8}
    path = figures.study_predictions(summary_of(B_MODELS), "S", dirs, val, tmp_path / "p" / "pred.png",
                                           highlight, u_threshold=0.4)
    assert path.stat().st_size > 20_000
    image = mpimg.imread(path)
    assert image.shape[:2] == predictions_shape(3) and image[..., :3].std() > 0.01
    for title in ("ddnn: ddnn_tanh8_bs16_s1", "ddnna: ddnna_tanh8_bs16_s0", "pinn, 2 windows: pinn_tanh8_w2_bs16_s0"):
        assert title in captured, title
    assert captured.count("3 of 24 trajectories high-error") == 3  # ceil(0.1 x 24) per model
    assert "U0 = a = 0.4" in captured and any("24 trajectories" in t for t in captured)
    fig = captured.figures[0]
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 12 and not captured.legends_inside
    u_panel = fig.axes[0]
    assert len(u_panel.lines) == 2 * 3 and len(u_panel.collections) == 1  # 3 highlighted: network and solver
    assert [line.get_linestyle() for line in u_panel.lines[:2]] == ["-", "--"]
    assert len(u_panel.collections[0].get_segments()) == 24 - 3  # the other trajectories, in grey


def test_predictions_of_problem_a_mark_high_error_points_and_training_points(tmp_path, captured):
    cfg = study_config("A")
    val, _ = make_dataset(cfg, "S", "val")
    train, _ = make_dataset(cfg, "S", "train")
    rows = [{"model": "ddnn_tanh8_bs16_s0", "class": "ddnn", "mean_err": 0.1},
            {"model": "pinn_tanh8_bs16_s0", "class": "pinn", "mean_err": 0.01}]
    dirs = save_networks(tmp_path, rows, ["t"])
    path = figures.study_predictions(summary_of(rows), "S", dirs, val, tmp_path / "a.png",
                                           {"rule": "top_fraction", "q": 0.05, "of_max": 0.8}, train=train)
    assert mpimg.imread(path).shape[:2] == predictions_shape(2)
    assert captured.count("4 of 80 points high-error") == 2
    assert {"training point", "high-error point"} <= set(captured)
    assert any("80 points of one trajectory" in t for t in captured)
    u_panel = captured.figures[0].axes[0]
    marks = [c.get_offsets() for c in u_panel.collections]
    assert sorted(len(m) for m in marks) == [4, 10]  # the high-error points and the training points


def test_predictions_of_a_study_whose_every_continuous_model_failed(tmp_path, captured):
    rows = [{"model": "ddnn_silu4_bs10_s0", "class": "ddnn", "status": "failed", "mean_err": np.nan},
            {"model": "itnn_silu4_bs10_s0", "class": "itnn", "mean_err": 0.1}]
    val, _ = make_dataset(study_config("A"), "S", "val")
    path = figures.study_predictions(summary_of(rows, "diverges"), "diverges", {}, val, tmp_path / "d.png",
                                           {"rule": "top_fraction", "q": 0.05, "of_max": 0.8})
    check_png(path, n_panels=1)
    assert any("every DDNN or PINN of diverges failed" in t and "(1 of 1 diverged)" in t for t in captured)
    only_itnn = summary_of(rows[1:], "C")
    figures.study_predictions(only_itnn, "C", {}, val, tmp_path / "c.png", {"rule": "of_max", "q": 0.05,
                                                                                   "of_max": 0.8})
    assert "no successful DDNN or PINN in C" in captured


# --------------------------------------------------------------------------- iteration cost


def test_iteration_cost_a_box_per_variant_and_a_panel_per_study(tmp_path, captured):
    rows = [{"model": f"ddnn_{i}", "class": "ddnn", "iter_time_s": t, "batch_size": bs}
            for i, (t, bs) in enumerate(zip((0.9e-4, 0.95e-4, 1.05e-4, 1.1e-4), (32, 128, 32, 128), strict=True))]
    rows += [{"model": f"pinn_{i}", "class": "pinn", "iter_time_s": t, "batch_size": 32}
             for i, t in enumerate((0.9e-3, 1e-3, 1.2e-3))]
    rows += [{"model": "ddnna_0", "class": "ddnn", "region": True, "iter_time_s": 3e-4, "batch_size": 32},
             {"model": "pinn_w5", "class": "pinn", "windows": 5, "iter_time_s": 2e-3, "batch_size": 32},
             {"model": "pinn_bad", "class": "pinn", "status": "failed", "iter_time_s": np.nan, "batch_size": 32}]
    summary = pd.concat([summary_of(rows, "B_S"), summary_of(rows[-1:], "diverges")], ignore_index=True)
    check_png(figures.iteration_cost(summary, tmp_path / "cost.png"), n_panels=2)
    assert {"ddnn", "ddnna", "pinn", "pinn\n5 windows", "B_S (1 failed)", "batch size", "32", "128"} <= set(captured)
    assert {"\u00d71", "\u00d73", "\u00d710", "\u00d720"} <= set(captured)  # medians over the DDNNs' (PINN: ~10x)
    assert any("every model of diverges failed" in t for t in captured)
    cost_axis = captured.figures[0].axes[0]
    assert cost_axis.get_yscale() == "log" and not captured.legends_inside
    points = np.concatenate([c.get_offsets()[:, 1] for c in cost_axis.collections if len(c.get_offsets())])
    assert sorted(np.round(points, 6)) == sorted(np.round([r["iter_time_s"] for r in rows[:-1]], 6))


def test_solver_times_in_legends_are_short():
    from fhnkit.analysis.cost_figures import seconds_label

    assert [seconds_label(t) for t in (0.0027, 0.000301, 0.13, 12.3)] == ["2.7 ms", "0.3 ms", "0.13 s", "12 s"]
