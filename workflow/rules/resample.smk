# Resampling (thesis 3.4.2), for studies with `resample`: a base model, its high-error points on the
# training set, new parameter sets around them solved in chunks, and models retrained with them.
# How many chunks there are is known only after the base model is trained: `select_high_error`
# is a checkpoint, and the set `results/{study}/resample/data.parquet` gathers whatever it made.


rule train_resample_model:
    input:
        unpack(resample_model_inputs),
    output:
        weights="results/{study}/resample/{which}/weights.pt",
        spec="results/{study}/resample/{which}/spec.json",
        history="results/{study}/resample/{which}/history.parquet",
        metrics="results/{study}/resample/{which}/metrics.json",
    params:
        spec=resample_model_spec,
    threads: lambda w: resample_model_spec(w)["training"]["threads"]
    resources:
        gpu=lambda w: 0 if resample_model_spec(w)["training"]["device"] == "cpu" else 1,
    log:
        "logs/{study}/resample/train_{which}.log",
    script:
        "../scripts/train.py"


checkpoint select_high_error:
    input:
        model="results/{study}/resample/base/metrics.json",
        train="results/{study}/data/train.parquet",
    output:
        centers="results/{study}/resample/centers.parquet",
        chunks=directory("results/{study}/resample/chunks"),
    params:
        study=lambda w: config["studies"][w.study],
        seed=lambda w: derive_seed(config["seed"], w.study, "resample"),
    log:
        "logs/{study}/resample/select.log",
    script:
        "../scripts/select_high_error.py"


rule solve_resample_chunk:
    input:
        "results/{study}/resample/chunks/{chunk}.parquet",
    output:
        "results/{study}/resample/solved/{chunk}.parquet",
    params:
        study=lambda w: config["studies"][w.study],
    log:
        "logs/{study}/resample/solve_{chunk}.log",
    script:
        "../scripts/solve_chunk.py"


rule resampled_set:
    input:
        resampled_chunks,
    output:
        "results/{study}/resample/data.parquet",
    params:
        problem=lambda w: config["studies"][w.study]["problem"],
    log:
        "logs/{study}/resample/merge.log",
    script:
        "../scripts/resampled_set.py"


rule error_maps:
    input:
        base="results/{study}/resample/base/metrics.json",
        retrained="results/{study}/resample/retrained/metrics.json",
        centers="results/{study}/resample/centers.parquet",
        val="results/{study}/data/val.parquet",
    output:
        maps="results/{study}/resample/error_maps.parquet",
        row="results/{study}/resample/summary.json",
        figure=report_item(
            "results/figures/error_maps_{study}.png",
            "../report/error_maps.rst",
            "resampling",
            "Error maps before/after resampling",
            study="{study}",
        ),
    params:
        problem=lambda w: config["studies"][w.study]["problem"],
    log:
        "logs/{study}/resample/error_maps.log",
    script:
        "../scripts/error_maps.py"


rule resampling_table:
    input:
        expand("results/{study}/resample/summary.json", study=resample_studies()),
    output:
        csv="results/analysis/resampling.csv",
        html=report_item(
            "results/analysis/resampling.html",
            "../report/resampling.rst",
            "resampling",
            "High-error resampling",
            kind="table",
        ),
    log:
        "logs/analysis/resampling.log",
    script:
        "../scripts/resampling_table.py"
