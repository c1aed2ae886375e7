"""Tests of fhnkit.figures: PNGs decode with the documented size, and plot the right things."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from fhnkit import figures
from test_analysis import fake_summary


def expected_shape(n_panels: int, panel_w: float = figures.PANEL_W) -> tuple[int, int]:
    width, height = figures.figure_size(n_panels, panel_w)
    return round(height * figures.DPI), round(width * figures.DPI)


def check_png(path, n_panels: int, panel_w: float = figures.PANEL_W) -> np.ndarray:
    """The PNG exists, is not tiny, decodes to the expected size and is not blank."""
    assert path.exists() and path.stat().st_size > 5_000
    image = mpimg.imread(path)
    assert image.shape[:2] == expected_shape(n_panels, panel_w)
    assert image[..., :3].std() > 0.01
    return image


@pytest.fixture
def captured(monkeypatch):
    """Texts of every figure saved by fhnkit.figures (titles, labels, legend entries)."""
    texts = []
    save = figures._save

    def spy(fig, path):
        texts.extend(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", spy)
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
    assert image.shape[0] == round(2 * figures.PANEL_H * figures.DPI)  # two rows of panels
    assert set(studies) <= set(captured)


def test_training_curves(tmp_path, captured):
    histories = {"pinn_a": history(), "ddnn_b": history(physics=False)}
    check_png(figures.training_curves(histories, tmp_path / "c.png", "A_scarce"), n_panels=2)
    assert {"pinn_a", "ddnn_b", "loss_total", "loss_physics", "val_mean", "val_max"} <= set(captured)
    assert "A_scarce" in captured


def test_training_curves_empty(tmp_path, captured):
    check_png(figures.training_curves({}, tmp_path / "e.png", "nothing"), n_panels=2)
    assert "no loss recorded" in captured


def test_select_and_study_training_curves(tmp_path):
    df = fake_summary()
    chosen = figures.select_curve_models(df, "A_scarce", per_class=2)
    best = df.sort_values("mean_err").groupby("class").head(2)["model"]
    assert sorted(chosen) == sorted(best) and len(chosen) == 4
    paths = {}
    for model in chosen:
        paths[model] = tmp_path / f"{model}.parquet"
        history().to_parquet(paths[model])
    out = figures.study_training_curves(df, "A_scarce", paths, tmp_path / "s.png")
    check_png(out, n_panels=2)


def test_error_vs_inference(tmp_path, captured):
    check_png(figures.error_vs_inference(grid_with_failures(), tmp_path / "ei.png"), 1, figures.WIDE_PANEL_W)
    assert "Euler, A_scarce: 0.5 s" in captured
    assert "Euler, B_S: 0.5 s" in captured


def test_error_vs_inference_without_timings(tmp_path, captured):
    df = fake_summary().head(1).assign(inference_time_s=np.nan, solver_time_s=np.nan)
    check_png(figures.error_vs_inference(df, tmp_path / "n.png"), 1, figures.WIDE_PANEL_W)
    assert "no timed, successful models" in captured
