# Analysis stage: summary table, statistics (SPEC.md section 7), figures and the config page.
# Options are under `analysis` in the config; the helper functions (table and figure paths,
# per-study model lists) live in common.smk.


rule summarise:
    input:
        metrics=all_model_outputs("metrics.json"),
        bench=[layout.benchmark_record(study) for study in config["studies"]],
    output:
        parquet=layout.summary("parquet"),
        csv=report_item(
            layout.summary("csv"),
            "../report/summary.rst",
            "summary",
            "Summary of all models",
            kind="table (CSV)",
        ),
    log:
        layout.log("analysis", "summarise"),
    conda:
        FHNKIT_ENV
    script:
        "../scripts/summarise.py"


rule analyse:
    input:
        summary=layout.summary("parquet"),
    output:
        shape_anova_csv=layout.analysis_table("shape_anova", "csv"),
        shape_anova_html=table_output("shape_anova"),
        ttest_pinn_ddnn_csv=layout.analysis_table("ttest_pinn_ddnn", "csv"),
        ttest_pinn_ddnn_html=table_output("ttest_pinn_ddnn"),
        technique_anova_csv=layout.analysis_table("technique_anova", "csv"),
        technique_anova_html=table_output("technique_anova"),
        time_domains_csv=layout.analysis_table("time_domains", "csv"),
        time_domains_html=table_output("time_domains"),
        failed_models_csv=layout.analysis_table("failed_models", "csv"),
        failed_models_html=table_output("failed_models"),
        shape_variance_csv=layout.analysis_table("shape_variance", "csv"),
        shape_variance_html=table_output("shape_variance"),
    log:
        layout.log("analysis", "analyse"),
    conda:
        FHNKIT_ENV
    params:
        neuron_threshold=config["analysis"]["neuron_threshold"],
        ttest_studies=config["analysis"]["ttest_studies"],
    script:
        "../scripts/analyse.py"


rule reproduction:
    input:
        unpack(lambda w: reproduction_inputs()),
    output:
        csv=layout.analysis_table("reproduction", "csv"),
        forest=report_item(
            layout.figure("reproduction_forest"),
            "../report/reproduction_forest.rst",
            "reproduction",
            "What this run reproduces, at a glance",
        ),
        html=report_item(
            layout.analysis_table("reproduction", "html"),
            "../report/reproduction.rst",
            "reproduction",
            "What this run reproduces",
            kind="table",
        ),
        pays_csv=layout.analysis_table("surrogate_pays", "csv"),
        pays_html=report_item(
            layout.analysis_table("surrogate_pays", "html"),
            "../report/surrogate_pays.rst",
            "reproduction",
            "Does a surrogate pay?",
            kind="table",
        ),
    log:
        layout.log("analysis", "reproduction"),
    conda:
        FHNKIT_ENV
    params:
        config=results_config(config),
    script:
        "../scripts/reproduction.py"


rule figures:
    input:
        summary=layout.summary("parquet"),
        histories=all_model_outputs("history.parquet"),
    output:
        accuracy=report_item(
            layout.figure("accuracy_vs_neurons"),
            "../report/accuracy_vs_neurons.rst",
            "accuracy",
            "Accuracy vs neurons",
        ),
        inference=report_item(
            layout.figure("error_vs_inference"),
            "../report/error_vs_inference.rst",
            "inference",
            "Error vs inference time",
        ),
        iteration_cost=report_item(
            layout.figure("iteration_cost"),
            "../report/iteration_cost.rst",
            "training",
            "Iteration cost by class",
        ),
        curves=[
            report_item(
                training_curves_path(study),
                "../report/training_curves.rst",
                "training",
                "Training curves",
                study=study,
            )
            for study in analysis_studies()
        ],
    log:
        layout.log("analysis", "figures"),
    conda:
        FHNKIT_ENV
    params:
        per_class=config["analysis"]["curves_per_class"],
    script:
        "../scripts/figures.py"


rule config_page:
    output:
        report_item(layout.config_page(), "../report/config.rst", "summary", "Configuration", kind="table"),
    log:
        layout.log("analysis", "config_page"),
    conda:
        FHNKIT_ENV
    params:
        # what the results depend on: where work ran (data_solver.backend) is provenance, not a rerun
        config=results_config(config),
    script:
        "../scripts/config_page.py"


rule rollout_figure:
    input:
        # the study's own models' metrics, not the summary: the figure follows its models, never the benchmarks
        metrics=lambda w: [model_path(w.study, m, "metrics.json") for m in itnn_models(w.study)],
        val=layout.dataset("{study}", "val"),
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in itnn_models(w.study)],
    output:
        report_item(
            layout.figure("rollout_{study}"),
            "../report/rollout.rst",
            "accuracy",
            "ITNN rollouts",
            study="{study}",
        ),
    log:
        layout.log("analysis", "rollout_{study}"),
    conda:
        FHNKIT_ENV
    params:
        problem=lambda w: study_config(w)["problem"],
    script:
        "../scripts/rollout_figure.py"


rule predictions_figure:
    input:
        metrics=lambda w: [model_path(w.study, m, "metrics.json") for m in continuous_models(w.study)],
        val=layout.dataset("{study}", "val"),
        train=layout.dataset("{study}", "train"),
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in continuous_models(w.study)],
    output:
        report_item(
            layout.figure("predictions_{study}"),
            "../report/predictions.rst",
            "accuracy",
            "Predictions vs solver",
            study="{study}",
        ),
    log:
        layout.log("analysis", "predictions_{study}"),
    conda:
        FHNKIT_ENV
    params:
        highlight=config["analysis"]["predictions"],
        a=config["model"]["a"],
        problem=lambda w: study_config(w)["problem"],
    script:
        "../scripts/predictions_figure.py"


rule error_cuts:
    input:
        metrics=lambda w: [model_path(w.study, m, "metrics.json") for m in study_models(w.study)],
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in study_models(w.study)],
    output:
        figure=report_item(
            layout.figure("error_cuts_{study}"),
            "../report/error_cuts.rst",
            "accuracy",
            "Error over cuts of (U0, t)",
            study="{study}",
        ),
        table=layout.error_cuts_table("{study}"),
    log:
        layout.log("analysis", "error_cuts_{study}"),
    conda:
        FHNKIT_ENV
    params:
        determinants=lambda w: data_determinants(config, w.study),
        config=lambda w: ExecutionOnly(data_job_config(config, w.study)),
    script:
        "../scripts/error_cuts.py"
