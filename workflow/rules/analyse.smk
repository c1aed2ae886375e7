# Analysis stage: summary table, statistics (SPEC.md section 7) and figures.
#
# Needs from common.smk: MODELS, model_path(), all_model_outputs(), config.
# Optional config keys (defaults in brackets): analysis.neuron_threshold [120],
# analysis.ttest_studies [all studies with both classes], analysis.curves_per_class [2].

ANALYSIS_TABLES = {
    "shape_anova": "Shape ANOVA (eq. 4.2)",
    "ttest_pinn_ddnn": "PINN vs DDNN t-test",
    "technique_anova": "Techniques ANOVA (eq. 4.1)",
    "failed_models": "Failed models",
    "shape_variance": "Shape variance",
}


def analysis_option(name, default):
    """config["analysis"][name], or `default` when the section or key is absent."""
    return config.get("analysis", {}).get(name, default)


def analysis_studies():
    """Sorted study names that have at least one model."""
    return sorted({study for study, _ in MODELS})


def history_paths(study):
    """{model: history.parquet path} of every model of `study`."""
    return {model: model_path(study, model, "history.parquet") for s, model in MODELS if s == study}


def training_curves_path(study):
    return f"results/figures/training_curves_{study}.png"


def itnn_models(study):
    return [m for s, m in MODELS if s == study and SPECS[(s, m)]["class"] == "itnn"]


def itnn_studies():
    return sorted({s for s, _ in MODELS if itnn_models(s)})


def analysis_outputs():
    """Every file of the analysis stage, for the workflow's target rule."""
    tables = [f"results/analysis/{name}.{ext}" for name in ANALYSIS_TABLES for ext in ("csv", "html")]
    figures = ["results/figures/accuracy_vs_neurons.png", "results/figures/error_vs_inference.png"]
    curves = [training_curves_path(study) for study in analysis_studies()]
    curves += [f"results/figures/rollout_{study}.png" for study in itnn_studies()]
    return ["results/summary.parquet", "results/summary.csv", "results/config.html", *tables, *figures, *curves]


def table_output(name):
    """The HTML page of an analysis table, marked for the report."""
    return report(
        f"results/analysis/{name}.html",
        caption=f"../report/{name}.rst",
        category="Tables",
        labels={"table": ANALYSIS_TABLES[name], "format": "HTML"},
    )


rule summarise:
    input:
        metrics=all_model_outputs("metrics.json"),
        bench=expand("results/{study}/benchmark.json", study=config["studies"]),
    output:
        parquet="results/summary.parquet",
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "Summary of all models", "format": "CSV (download)"},
        ),
    log:
        "logs/analysis/summarise.log",
    script:
        "../scripts/summarise.py"


rule analyse:
    input:
        summary="results/summary.parquet",
    output:
        shape_anova_csv="results/analysis/shape_anova.csv",
        shape_anova_html=table_output("shape_anova"),
        ttest_pinn_ddnn_csv="results/analysis/ttest_pinn_ddnn.csv",
        ttest_pinn_ddnn_html=table_output("ttest_pinn_ddnn"),
        technique_anova_csv="results/analysis/technique_anova.csv",
        technique_anova_html=table_output("technique_anova"),
        failed_models_csv="results/analysis/failed_models.csv",
        failed_models_html=table_output("failed_models"),
        shape_variance_csv="results/analysis/shape_variance.csv",
        shape_variance_html=table_output("shape_variance"),
    params:
        neuron_threshold=analysis_option("neuron_threshold", 120),
        ttest_studies=analysis_option("ttest_studies", None),
    log:
        "logs/analysis/analyse.log",
    script:
        "../scripts/analyse.py"


rule figures:
    input:
        summary="results/summary.parquet",
        histories=all_model_outputs("history.parquet"),
    output:
        accuracy=report(
            "results/figures/accuracy_vs_neurons.png",
            caption="../report/accuracy_vs_neurons.rst",
            category="Figures",
            labels={"figure": "Accuracy vs neurons", "study": "all"},
        ),
        inference=report(
            "results/figures/error_vs_inference.png",
            caption="../report/error_vs_inference.rst",
            category="Figures",
            labels={"figure": "Error vs inference time", "study": "all"},
        ),
        curves=[
            report(
                training_curves_path(study),
                caption="../report/training_curves.rst",
                category="Figures",
                labels={"figure": "Training curves", "study": study},
            )
            for study in analysis_studies()
        ],
    params:
        histories={study: history_paths(study) for study in analysis_studies()},
        per_class=analysis_option("curves_per_class", 2),
    log:
        "logs/analysis/figures.log",
    script:
        "../scripts/figures.py"


rule config_page:
    output:
        report(
            "results/config.html",
            caption="../report/config.rst",
            category="Tables",
            labels={"table": "Configuration", "format": "HTML"},
        ),
    params:
        config=config,
    log:
        "logs/analysis/config_page.log",
    script:
        "../scripts/config_page.py"


rule rollout_figure:
    input:
        summary="results/summary.parquet",
        val="results/{study}/data/val.parquet",
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in itnn_models(w.study)],
    output:
        report(
            "results/figures/rollout_{study}.png",
            caption="../report/rollout.rst",
            category="Figures",
            labels={"figure": "ITNN rollouts", "study": "{study}"},
        ),
    params:
        problem=lambda w: config["studies"][w.study]["problem"],
    log:
        "logs/analysis/rollout_{study}.log",
    script:
        "../scripts/rollout_figure.py"
