"""Tests of fhnkit.analysis.stats on synthetic grids whose statistics are known by construction."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fhnkit import analysis as an

WIDTHS = [8, 16, 32]
ACTS = ["silu", "tanh"]
SHAPE_ERR = {"rectangle": 2e-3, "funnel": 4e-3, "bottleneck": 6e-3, "bowtie": 1e-3, "diamond": 5e-3}


def shape_of(widths: tuple[int, ...]) -> str:
    """Shape class of SPEC.md section 6 (test-local copy)."""
    if len(set(widths)) == 1:
        return "rectangle"
    pairs = list(itertools.pairwise(widths))
    if all(a > b for a, b in pairs):
        return "funnel"
    if all(a < b for a, b in pairs):
        return "bottleneck"
    if len(widths) == 3 and widths[1] < min(widths[0], widths[2]):
        return "bowtie"
    if len(widths) == 3 and widths[1] > max(widths[0], widths[2]):
        return "diamond"
    return "other"


def fake_summary(seed: int = 0, pinn_factor: float = 0.05, studies=("A_scarce",),
                 classes=("ddnn", "pinn"), noise: float = 0.1) -> pd.DataFrame:
    """A grid of 2- and 3-layer models: error = shape effect / sqrt(neurons/16) x class factor.

    Log-normal noise of relative size `noise`; PINN errors are `pinn_factor`
    times DDNN errors. Timings grow linearly with neurons; solver 0.5 s.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for study, cls in itertools.product(studies, classes):
        for depth in (2, 3):
            for widths in itertools.product(WIDTHS, repeat=depth):
                for acts in itertools.product(ACTS, repeat=depth):
                    shape = shape_of(widths)
                    neurons = sum(widths)
                    base = SHAPE_ERR.get(shape, 3e-3) / np.sqrt(neurons / 16)
                    err = base * (pinn_factor if cls == "pinn" else 1) * rng.lognormal(0, noise)
                    arch = "-".join(f"{a}{w}" for a, w in zip(acts, widths, strict=True))
                    rows.append({
                        "study": study, "problem": study.split("_")[0],
                        "model": f"{cls}_{arch}_bs10_s0", "class": cls, "arch": arch,
                        "depth": depth, "neurons": neurons, "shape": shape, "batch_size": 10,
                        "seed": 0, "n_params": neurons * 10, "iterations": 1000,
                        "mean_err": err, "max_err": 10 * err, "iter_time_s": 1e-3,
                        "inference_time_s": 1e-3 * neurons, "inference_time_iqr_s": 1e-5,
                        "solver_time_s": 0.5, "solver_time_iqr_s": 1e-3,
                        "speedup": 0.5 / (1e-3 * neurons), "n_sets": 1000, "status": "ok",
                    })
    return pd.DataFrame(rows, columns=an.SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- build_summary

def _metrics(study, model, cls="pinn", status="ok", err=0.001):
    m = {"study": study, "problem": "A", "model": model, "class": cls, "arch": "silu16-tanh8",
         "layers": [["silu", 16], ["tanh", 8]], "depth": 2, "neurons": 24, "shape": "funnel",
         "batch_size": 10, "seed": 0, "n_params": 211, "iterations": 5000,
         "mean_err": err, "max_err": 0.03, "iter_time_s": 0.0011, "status": status}
    if status == "failed":
        m.update(mean_err=None, max_err=None, error="loss became NaN")
    return m


def _timing(median, q25, q75):
    return {"median": median, "q25": q25, "q75": q75, "min": q25 / 2, "samples": [q25, median, q75]}


def _bench(study, model, inf=0.02, solver=0.1):
    return {"study": study, "model": model, "n_sets": 100000, "n_points": 10, "threads": 2,
            "device": "cpu", "backend": "torch",
            "inference_time_s": _timing(inf, inf * 0.9, inf * 1.2),
            "solver_time_s": _timing(solver, solver * 0.95, solver * 1.1),
            "solver": {"dt": 0.1, "t_end": 10, "precision": "float32", "backend": "numba"}}


def _write(tmp_path, name, obj):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(obj))
    return path


def test_build_summary_joins_and_derives(tmp_path):
    metrics = [_write(tmp_path, "m1", _metrics("A_scarce", "b")),
               _write(tmp_path, "m2", _metrics("A_scarce", "a", status="failed")),
               _write(tmp_path, "m3", _metrics("A_dense", "b", cls="ddnn", err=0.02))]
    bench = [_write(tmp_path, "b1", _bench("A_scarce", "b", inf=0.02, solver=0.1)),
             _write(tmp_path, "b2", _bench("A_scarce", "a"))]
    df = an.build_summary(metrics, bench)

    assert list(df.columns) == an.SUMMARY_COLUMNS
    assert list(df.columns)[:3] == ["study", "problem", "model"] and list(df.columns[-2:]) == ["status", "error"]
    assert list(zip(df["study"], df["model"], strict=True)) == [("A_dense", "b"), ("A_scarce", "a"), ("A_scarce", "b")]
    ok = df.set_index(["study", "model"]).loc[("A_scarce", "b")]
    assert ok["mean_err"] == pytest.approx(0.001)
    assert ok["inference_time_s"] == pytest.approx(0.02)
    assert ok["inference_time_iqr_s"] == pytest.approx(0.02 * 0.3)
    assert ok["solver_time_iqr_s"] == pytest.approx(0.1 * 0.15)
    assert ok["speedup"] == pytest.approx(5.0)
    assert ok["n_sets"] == 100000
    failed = df.set_index(["study", "model"]).loc[("A_scarce", "a")]
    assert failed["status"] == "failed" and np.isnan(failed["mean_err"]) and np.isnan(failed["max_err"])
    no_bench = df.set_index(["study", "model"]).loc[("A_dense", "b")]
    assert np.isnan(no_bench["inference_time_s"]) and np.isnan(no_bench["speedup"])
    assert pd.isna(no_bench["n_sets"])


def test_build_summary_rejects_duplicates_and_survives_empty(tmp_path):
    m = _write(tmp_path, "m", _metrics("A_scarce", "x"))
    with pytest.raises(ValueError, match="duplicate"):
        an.build_summary([m, m], [])
    empty = an.build_summary([], [])
    assert empty.empty and list(empty.columns) == an.SUMMARY_COLUMNS


# --------------------------------------------------------------------------- ANOVA

def test_anova_matches_one_way_by_hand():
    df = fake_summary(classes=("ddnn",))
    table = an.anova_table(df, "mean_err ~ C(shape)", typ=2).set_index("term")
    groups = df.groupby("shape")["mean_err"]
    between = float((groups.count() * (groups.mean() - df["mean_err"].mean()) ** 2).sum())
    within = float(((df["mean_err"] - groups.transform("mean")) ** 2).sum())
    k, n = groups.ngroups, len(df)
    assert table.loc["C(shape)", "sum_sq"] == pytest.approx(between, rel=1e-9)
    assert table.loc["Residual", "sum_sq"] == pytest.approx(within, rel=1e-9)
    assert table.loc["C(shape)", "F"] == pytest.approx(between / (k - 1) / (within / (n - k)), rel=1e-9)
    assert table.attrs["anova_type"] == 2 and (table["anova_type"] == 2).all()
    assert (table["n_obs"] == n).all() and an.is_estimable(table.reset_index())


def test_anova_shape_effect_is_large_on_balanced_grid():
    df = fake_summary(classes=("ddnn",), noise=0.05)
    table = an.anova_table(df, "mean_err ~ C(shape)*neurons").set_index("term")
    assert list(table.index) == ["C(shape)", "neurons", "C(shape):neurons", "Residual"]
    assert table.loc["C(shape)", "F"] > 100
    assert table.loc["C(shape)", "PR(>F)"] < 1e-10
    n_shapes = df["shape"].nunique()  # rectangle ... diamond and "other"
    assert n_shapes == 6
    assert table.loc["Residual", "df"] == len(df) - 2 * n_shapes  # shape + neurons + interactions


def test_anova_type_is_recorded_and_roman_accepted():
    df = fake_summary(classes=("ddnn",))
    t1 = an.anova_table(df, "mean_err ~ C(shape) + neurons", typ="I")
    assert t1.attrs["anova_type"] == 1 and (t1["anova_type"] == 1).all()


@pytest.mark.parametrize("case, reason", [
    ("few", "too few observations"),
    ("one_level", "single level"),
    ("confounded", "rank-deficient"),
    ("constant", "constant"),
    ("no_resid", "no residual degrees of freedom"),
    ("all_nan", "too few observations"),
])
def test_anova_degenerate_inputs_give_not_estimable_row(case, reason):
    df = fake_summary(classes=("ddnn",))
    data = {
        "few": df.head(2),
        "one_level": df[df["shape"] == "rectangle"],
        "confounded": pd.DataFrame({"shape": ["a"] * 5 + ["b"] * 5, "neurons": [8] * 5 + [16] * 5,
                                    "mean_err": np.linspace(1, 2, 10)}),
        "constant": df.assign(mean_err=1e-3),
        "no_resid": df.groupby("shape").head(1).head(3),  # 3 shapes, 3 rows
        "all_nan": df.assign(mean_err=np.nan),
    }[case]
    formula = "mean_err ~ C(shape)" if case == "no_resid" else "mean_err ~ C(shape)*neurons"
    table = an.anova_table(data, formula)
    assert len(table) == 1 and not an.is_estimable(table)
    assert table["note"].iloc[0].startswith("not estimable: ") and reason in table["note"].iloc[0]
    assert list(table.columns) == an.ANOVA_COLUMNS
    assert table.attrs["anova_type"] == 2 and np.isnan(table["F"].iloc[0])


def test_shape_anova_subsets_and_fallback():
    df = fake_summary(noise=0.05)
    out = an.shape_anova(df, neuron_threshold=60)
    assert set(out["subset"]) == {"below 60", "at or above 60"}
    assert set(out["class"]) == {"ddnn", "pinn"} and set(out["study"]) == {"A_scarce"}
    below = out[(out["subset"] == "below 60") & (out["class"] == "ddnn")].set_index("term")
    assert below.loc["C(shape)", "F"] > 50
    assert (out["anova_type"] == 2).all() and out.attrs["anova_type"] == 2

    # from 60 neurons some shapes have a single neuron count: interaction dropped, reason noted
    top60 = out[(out["subset"] == "at or above 60") & (out["class"] == "ddnn")]
    assert set(top60["formula"]) == {"mean_err ~ C(shape) + neurons"}
    assert top60["note"].str.contains("interaction not estimable.*rank-deficient").all()

    # keep only rectangles from 48 neurons on (48, 64, 96): shape term dropped there
    rect_top = df[(df["neurons"] < 48) | (df["shape"] == "rectangle")]
    high = an.shape_anova(rect_top, neuron_threshold=48)
    top = high[(high["subset"] == "at or above 48") & (high["class"] == "ddnn")]
    assert set(top["formula"]) == {"mean_err ~ neurons"}
    assert top["note"].str.contains("single shape").all()
    assert "C(shape)" not in set(top["term"])


def test_shape_anova_ignores_failed_models_and_handles_nothing():
    df = fake_summary(classes=("ddnn",))
    failed = df.assign(status="failed", mean_err=np.nan)
    assert (an.shape_anova(failed)["note"].str.startswith("not estimable")).all()
    mixed = pd.concat([df, failed.assign(model=failed["model"] + "_f")])
    pd.testing.assert_frame_equal(an.shape_anova(mixed), an.shape_anova(df))


# --------------------------------------------------------------------------- t-test and variance

def test_ttest_detects_lower_pinn_error():
    df = pd.concat([fake_summary(pinn_factor=0.05, studies=("A_scarce",)),
                    fake_summary(seed=1, pinn_factor=1.0, studies=("A_dense",)),
                    fake_summary(seed=2, studies=("B_S",), classes=("ddnn",))])
    out = an.pinn_vs_ddnn_ttest(df).set_index("study")
    assert list(out.index) == ["A_dense", "A_scarce"]
    scarce, dense = out.loc["A_scarce"], out.loc["A_dense"]
    assert scarce["t"] > 0 and scarce["p_value"] < 1e-6 and scarce["p_value_log10"] < 1e-6
    assert scarce["mean_pinn"] < scarce["mean_ddnn"] / 10
    assert dense["p_value_log10"] > 0.01

    ddnn = df.query("study == 'A_scarce' and `class` == 'ddnn'")["mean_err"]
    pinn = df.query("study == 'A_scarce' and `class` == 'pinn'")["mean_err"]
    ref = stats.ttest_ind(ddnn, pinn, equal_var=False)
    assert scarce["t"] == pytest.approx(ref.statistic) and scarce["p_value"] == pytest.approx(ref.pvalue)
    assert scarce["median_ddnn"] == pytest.approx(ddnn.median()) and scarce["n_pinn"] == len(pinn)


def test_ttest_is_welch():
    """Unequal group sizes and spreads: Welch-Satterthwaite df, not the pooled n1 + n2 - 2."""
    df = fake_summary(pinn_factor=0.8, noise=0.5)
    df = df[(df["class"] == "ddnn") | (df.index % 3 == 0)]
    row = an.pinn_vs_ddnn_ttest(df).iloc[0]
    x = df.loc[df["class"] == "ddnn", "mean_err"]
    y = df.loc[df["class"] == "pinn", "mean_err"]
    vx, vy = x.var() / len(x), y.var() / len(y)
    welch_df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    assert row["df"] == pytest.approx(welch_df) and row["df"] < len(x) + len(y) - 2 - 5
    ref = stats.ttest_ind(x, y, equal_var=False)
    assert 1e-8 < row["p_value"] == pytest.approx(ref.pvalue)


def test_ttest_study_filter_and_small_groups():
    df = fake_summary(studies=("A_scarce", "A_dense"))
    assert list(an.pinn_vs_ddnn_ttest(df, studies=["A_dense"])["study"]) == ["A_dense"]
    tiny = pd.concat([df[df["class"] == "ddnn"], df[df["class"] == "pinn"].head(1)])
    row = an.pinn_vs_ddnn_ttest(tiny).iloc[0]
    assert row["n_pinn"] == 1 and np.isnan(row["p_value"]) and "fewer than 2" in row["note"]


def test_shape_variance_by_hand():
    df = pd.DataFrame({"study": "S", "class": "ddnn", "status": "ok",
                       "shape": ["a", "a", "b", "b", "b"], "neurons": [10, 10, 10, 200, 200],
                       "mean_err": [1.0, 3.0, 10.0, 12.0, 14.0]})
    out = an.shape_variance(df, neuron_threshold=120).set_index("subset")
    everything = out.loc["all"]
    # within: (1+1) + (4+0+4) = 10 over n-k = 3; shape means 2 and 12 -> variance 50
    assert everything["intra_var"] == pytest.approx(10 / 3)
    assert everything["extra_var"] == pytest.approx(50.0)
    assert everything["ratio"] == pytest.approx(15.0)
    small = out.loc["below 120"]
    assert small["n_models"] == 3 and small["intra_var"] == pytest.approx(2.0)
    large = out.loc["at or above 120"]
    assert large["n_shapes"] == 1 and np.isnan(large["extra_var"])


def test_shape_variance_shape_dominates_in_fake_grid():
    out = an.shape_variance(fake_summary(classes=("ddnn",), noise=0.02), neuron_threshold=60)
    row = out.set_index("subset").loc["below 60"]
    assert row["ratio"] > 5


# --------------------------------------------------------------------------- output

def test_write_table(tmp_path):
    df = pd.DataFrame({"term": ["C(shape)", "Residual"], "F": [19.6123456, np.nan], "df": [4.0, 90.0]})
    csv, page = tmp_path / "t" / "a.csv", tmp_path / "t" / "a.html"
    an.write_table(df, csv, page, title="ANOVA <eq. 4.2>", caption="Type II & more")
    pd.testing.assert_frame_equal(pd.read_csv(csv), df)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<table" in text and "<style>" in text
    assert "ANOVA &lt;eq. 4.2&gt;" in text and "Type II &amp; more" in text
    assert "19.61" in text and "19.6123456" not in text and "—" in text
    # the page carries its own CSV: the download works inside the self-contained report
    import base64
    import re

    link = re.search(r"<a download='a.csv' href='data:text/csv;charset=utf-8;base64,([A-Za-z0-9+/=]+)'>", text)
    assert link and base64.b64decode(link.group(1)) == csv.read_bytes()


def test_write_table_page_shows_chosen_columns_and_the_csv_keeps_all(tmp_path):
    df = pd.DataFrame({"model": ["m1", "m2"], "time_s": [0.5, 0.25], "peaks": ["a long description", "another"]})
    an.write_table(df, tmp_path / "b.csv", tmp_path / "b.html", "t", "c", html_columns=["model", "time_s"])
    page = (tmp_path / "b.html").read_text()
    assert "<th>time_s</th>" in page and "peaks" not in page and "a long description" not in page
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b.csv"), df)


def test_write_table_empty(tmp_path):
    an.write_table(pd.DataFrame(columns=an.TTEST_COLUMNS), tmp_path / "e.csv", tmp_path / "e.html", "t", "c")
    assert "No rows" in (tmp_path / "e.html").read_text()
    assert list(pd.read_csv(tmp_path / "e.csv").columns) == an.TTEST_COLUMNS


def test_analysis_tables_titles_and_content():
    tables = an.analysis_tables(fake_summary(), neuron_threshold=60)
    assert list(tables) == ["shape_anova", "ttest_pinn_ddnn", "technique_anova", "time_domains", "failed_models",
                            "shape_variance"]
    anova, title, caption = tables["shape_anova"]
    assert "eq. 4.2" in title and caption.startswith("Type II ANOVA") and "60 neurons" in caption
    assert tables["ttest_pinn_ddnn"][0]["p_value"].iloc[0] < 1e-6


def test_failed_models_lists_exactly_the_failed_ones_with_their_message(tmp_path):
    metrics = [_write(tmp_path, "m1", _metrics("A_scarce", "ok_model")),
               _write(tmp_path, "m2", _metrics("A_scarce", "bad_model", status="failed"))]
    failed = an.failed_models(an.build_summary(metrics, []))
    assert list(failed["model"]) == ["bad_model"] and list(failed["error"]) == ["loss became NaN"]
    assert an.failed_models(an.build_summary(metrics[:1], [])).empty


def test_technique_anova_finds_the_physics_effect_and_its_cost():
    rng = np.random.default_rng(0)
    rows = []
    for cls in ("ddnn", "pinn"):
        for region in (False, True):
            for bs in (32, 128, 512):
                for _replicate in range(3):
                    err = (0.01 if cls == "ddnn" else 0.03) * (1 + 0.05 * rng.standard_normal())
                    cost = (1e-3 if cls == "ddnn" else 1e-2) * (1 + 0.05 * rng.standard_normal())
                    rows.append({"study": "B_S", "class": cls, "region": region, "batch_size": bs,
                                 "mean_err": err, "iter_time_s": cost, "status": "ok"})
    table = an.technique_anova(pd.DataFrame(rows))
    assert set(table["response"]) == {"mean_err", "iter_time_s"}
    acc = table[table["response"] == "mean_err"].set_index("term")
    assert acc.loc["C(pinn)", "PR(>F)"] < 1e-6 and acc.loc["C(iccs)", "PR(>F)"] > 1e-3
    assert acc["formula"].iloc[0] == "mean_err ~ C(iccs)*batch_size + C(pinn)*batch_size"
    assert an.technique_formula(pd.DataFrame({"batch_size": [1, 1], "iccs": [True, True],
                                              "pinn": [False, True]}), "mean_err") == "mean_err ~ C(pinn)"
