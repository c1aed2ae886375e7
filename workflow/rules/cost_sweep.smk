# Architecture cost sweep (thesis 4.4, Figures 39-40, Tables 12-13): untrained SiLU networks of every
# width x layer count of `cost_sweep`, built as the compile stage builds a trained model and timed beside
# the Euler solver on the benchmark's work. The timing job takes every core Snakemake was given, so that
# no other job runs beside it and disturbs the timings; the ANOVAs and figures are a separate, cheap job.


rule cost_sweep:
    output:
        parquet="results/cost_sweep/timings.parquet",
        csv="results/cost_sweep/timings.csv",
        html=report(
            "results/cost_sweep/timings.html",
            caption="../report/cost_sweep_timings.rst",
            category="Tables",
            labels={"table": "Cost sweep timings", "format": "HTML"},
        ),
    params:
        config={key: config[key] for key in ("seed", "model", "benchmark", "compile", "cost_sweep")},
    threads: every_core
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    log:
        "logs/cost_sweep/sweep.log",
    script:
        "../scripts/cost_sweep.py"


rule cost_sweep_analysis:
    input:
        timings="results/cost_sweep/timings.parquet",
    output:
        time_csv="results/analysis/cost_anova_time.csv",
        time_html=report(
            "results/analysis/cost_anova_time.html",
            caption="../report/cost_anova_time.rst",
            category="Tables",
            labels={"table": "Cost ANOVA: time (eq. 4.3)", "format": "HTML"},
        ),
        speedup_csv="results/analysis/cost_anova_speedup.csv",
        speedup_html=report(
            "results/analysis/cost_anova_speedup.html",
            caption="../report/cost_anova_speedup.rst",
            category="Tables",
            labels={"table": "Cost ANOVA: speedup (eq. 4.3)", "format": "HTML"},
        ),
        time_figure=report(
            "results/figures/inference_vs_neurons.png",
            caption="../report/inference_vs_neurons.rst",
            category="Figures",
            labels={"figure": "Inference time vs neurons (cost sweep)", "study": "cost sweep"},
        ),
        speedup_figure=report(
            "results/figures/compile_speedup.png",
            caption="../report/compile_speedup.rst",
            category="Figures",
            labels={"figure": "Compiled-over-eager speedup (cost sweep)", "study": "cost sweep"},
        ),
    params:
        sweep=config["cost_sweep"],
        bench=config["benchmark"],
    log:
        "logs/cost_sweep/analysis.log",
    script:
        "../scripts/cost_sweep_analysis.py"
