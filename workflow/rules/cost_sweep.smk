# Architecture cost sweep (thesis 4.4, Figures 39-40, Tables 12-13): untrained SiLU networks of every
# width x layer count of `cost_sweep`, built as the compile stage builds a trained model and timed beside
# the Euler solver on the benchmark's work. The timing job takes every core Snakemake was given, so that
# no other job runs beside it and disturbs the timings; the ANOVAs and figures are a separate, cheap job.


rule cost_sweep:
    output:
        parquet=layout.cost_sweep_file("timings.parquet"),
        csv=layout.cost_sweep_file("timings.csv"),
        html=report_item(
            layout.cost_sweep_file("timings.html"),
            "../report/cost_sweep_timings.rst",
            "inference",
            "Cost sweep timings",
            study="cost sweep",
            kind="table",
        ),
    log:
        layout.log("cost_sweep", "sweep"),
    conda:
        FHNKIT_ENV
    threads: every_core
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    params:
        config={key: config[key] for key in ("seed", "model", "benchmark", "compile", "cost_sweep")},
    script:
        "../scripts/cost_sweep.py"


rule cost_sweep_analysis:
    input:
        timings=layout.cost_sweep_file("timings.parquet"),
    output:
        time_csv=layout.analysis_table("cost_anova_time", "csv"),
        time_html=report_item(
            layout.analysis_table("cost_anova_time", "html"),
            "../report/cost_anova_time.rst",
            "inference",
            "Cost ANOVA: time (eq. 4.3)",
            study="cost sweep",
            kind="table",
        ),
        speedup_csv=layout.analysis_table("cost_anova_speedup", "csv"),
        speedup_html=report_item(
            layout.analysis_table("cost_anova_speedup", "html"),
            "../report/cost_anova_speedup.rst",
            "inference",
            "Cost ANOVA: speedup (eq. 4.3)",
            study="cost sweep",
            kind="table",
        ),
        time_figure=report_item(
            layout.figure("inference_vs_neurons"),
            "../report/inference_vs_neurons.rst",
            "inference",
            "Inference time vs neurons",
            study="cost sweep",
        ),
        speedup_figure=report_item(
            layout.figure("compile_speedup"),
            "../report/compile_speedup.rst",
            "inference",
            "Compiled-over-eager speedup",
            study="cost sweep",
        ),
    log:
        layout.log("cost_sweep", "analysis"),
    conda:
        FHNKIT_ENV
    params:
        sweep=config["cost_sweep"],
        bench=config["benchmark"],
    script:
        "../scripts/cost_sweep_analysis.py"
