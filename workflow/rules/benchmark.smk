# Benchmark: each trained network against the Euler solver on the same work (SPEC.md section 3).
# A benchmark job takes every core Snakemake was given, so that no other job runs
# beside it and disturbs the timings; it uses benchmark.threads of them.


rule benchmark:
    input:
        spec="results/{study}/models/{model}/spec.json",
        weights="results/{study}/models/{model}/weights.pt",
        metrics="results/{study}/models/{model}/metrics.json",
    output:
        "results/{study}/models/{model}/bench.json",
    params:
        bench=config["benchmark"],
        settings=study_settings,
        fhn=config["model"],
        seed=config["seed"],
    threads: workflow.cores
    log:
        "logs/{study}/benchmark/{model}.log",
    script:
        "../scripts/benchmark.py"
