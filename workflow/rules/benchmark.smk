# Benchmark: each trained network against the Euler solver on the same work (SPEC.md section 3).
# One job per study times all of its models in one process, one after the other, so that
# every model meets the same conditions. The job takes every core Snakemake was given, so
# that no other job runs beside it and disturbs the timings; it uses benchmark.threads.


rule benchmark:
    input:
        specs=lambda w: [model_path(w.study, m, "spec.json") for m in study_models(w.study)],
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in study_models(w.study)],
        metrics=lambda w: [model_path(w.study, m, "metrics.json") for m in study_models(w.study)],
        compiled=lambda w: [f"results/{w.study}/compiled/{m}/compiled.json" for m in study_models(w.study)],
    output:
        "results/{study}/benchmark.json",
    params:
        bench=config["benchmark"],
        settings=lambda w: config["studies"][w.study],
        fhn=config["model"],
        seed=config["seed"],
        compile=config["compile"],
    threads: every_core
    log:
        "logs/{study}/benchmark.log",
    script:
        "../scripts/benchmark.py"


rule benchmark_table:
    input:
        expand("results/{study}/benchmark.json", study=config["studies"]),
    output:
        csv="results/analysis/benchmark.csv",
        html=report_item(
            "results/analysis/benchmark.html",
            "../report/benchmark.rst",
            "inference",
            "Inference benchmark",
            kind="table",
        ),
    log:
        "logs/analysis/benchmark_table.log",
    script:
        "../scripts/benchmark_table.py"
