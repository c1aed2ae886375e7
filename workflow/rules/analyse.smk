# Analysis stage: summary table, statistics (SPEC.md section 7), figures and the config page.
# Options are under `analysis` in the config; the helper functions (table and figure paths,
# per-study model lists) live in common.smk.


rule summarise:
    input:
        metrics=all_model_outputs("metrics.json"),
        bench=expand("results/{study}/benchmark.json", study=config["studies"]),
    output:
        parquet="results/summary.parquet",
        csv=report_item(
            "results/summary.csv",
            "../report/summary.rst",
            "summary",
            "Summary of all models",
            kind="table (CSV)",
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
        time_domains_csv="results/analysis/time_domains.csv",
        time_domains_html=table_output("time_domains"),
        failed_models_csv="results/analysis/failed_models.csv",
        failed_models_html=table_output("failed_models"),
        shape_variance_csv="results/analysis/shape_variance.csv",
        shape_variance_html=table_output("shape_variance"),
    params:
        neuron_threshold=config["analysis"]["neuron_threshold"],
        ttest_studies=config["analysis"]["ttest_studies"],
    log:
        "logs/analysis/analyse.log",
    script:
        "../scripts/analyse.py"


rule figures:
    input:
        summary="results/summary.parquet",
        histories=all_model_outputs("history.parquet"),
    output:
        accuracy=report_item(
            "results/figures/accuracy_vs_neurons.png",
            "../report/accuracy_vs_neurons.rst",
            "accuracy",
            "Accuracy vs neurons",
        ),
        inference=report_item(
            "results/figures/error_vs_inference.png",
            "../report/error_vs_inference.rst",
            "inference",
            "Error vs inference time",
        ),
        iteration_cost=report_item(
            "results/figures/iteration_cost.png",
            "../report/iteration_cost.rst",
            "training",
            "Iteration cost by class",
        ),
        curves=[
            report_item(training_curves_path(study), "../report/training_curves.rst", "training", "Training curves",
                        study=study)
            for study in analysis_studies()
        ],
    params:
        per_class=config["analysis"]["curves_per_class"],
    log:
        "logs/analysis/figures.log",
    script:
        "../scripts/figures.py"


rule config_page:
    output:
        report_item("results/config.html", "../report/config.rst", "summary", "Configuration", kind="table"),
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
        report_item(
            "results/figures/rollout_{study}.png",
            "../report/rollout.rst",
            "accuracy",
            "ITNN rollouts",
            study="{study}",
        ),
    params:
        problem=lambda w: config["studies"][w.study]["problem"],
    log:
        "logs/analysis/rollout_{study}.log",
    script:
        "../scripts/rollout_figure.py"


rule predictions_figure:
    input:
        summary="results/summary.parquet",
        val="results/{study}/data/val.parquet",
        train="results/{study}/data/train.parquet",
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in continuous_models(w.study)],
    output:
        report_item(
            "results/figures/predictions_{study}.png",
            "../report/predictions.rst",
            "accuracy",
            "Predictions vs solver",
            study="{study}",
        ),
    params:
        highlight=config["analysis"]["predictions"],
        a=config["model"]["a"],
        problem=lambda w: config["studies"][w.study]["problem"],
    log:
        "logs/analysis/predictions_{study}.log",
    script:
        "../scripts/predictions_figure.py"


rule error_cuts:
    input:
        summary="results/summary.parquet",
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in study_models(w.study)],
    output:
        figure=report_item(
            "results/figures/error_cuts_{study}.png",
            "../report/error_cuts.rst",
            "accuracy",
            "Error over cuts of (U0, t)",
            study="{study}",
        ),
        table="results/{study}/error_cuts.parquet",
    log:
        "logs/analysis/error_cuts_{study}.log",
    script:
        "../scripts/error_cuts.py"
