# Benchmark: each trained network against the Euler solver on the same work (SPEC.md section 3).
# One job per study times all of its models in one process, one after the other, so that
# every model meets the same conditions. The job takes every core Snakemake was given, so
# that no other job runs beside it and disturbs the timings; it uses benchmark.threads.


rule benchmark:
    input:
        specs=lambda w: [model_path(w.study, m, "spec.json") for m in study_models(w.study)],
        weights=lambda w: [model_path(w.study, m, "weights.pt") for m in study_models(w.study)],
        metrics=lambda w: [model_path(w.study, m, "metrics.json") for m in study_models(w.study)],
        compiled=lambda w: [layout.compiled_record(w.study, m) for m in study_models(w.study)],
    output:
        layout.benchmark_record("{study}"),
    log:
        layout.log("{study}", "benchmark"),
    conda:
        FHNKIT_ENV
    threads: every_core
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    params:
        bench=config["benchmark"],
        settings=study_setting,
        fhn=config["model"],
        seed=config["seed"],
        compile=config["compile"],
    script:
        "../scripts/benchmark.py"


rule benchmark_table:
    input:
        [layout.benchmark_record(study) for study in config["studies"]],
    output:
        csv=layout.analysis_table("benchmark", "csv"),
        html=report_item(
            layout.analysis_table("benchmark", "html"),
            "../report/benchmark.rst",
            "inference",
            "Inference benchmark",
            kind="table",
        ),
    log:
        layout.log("analysis", "benchmark_table"),
    conda:
        FHNKIT_ENV
    script:
        "../scripts/benchmark_table.py"
