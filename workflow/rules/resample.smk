# Resampling (thesis 3.4.2), for studies with `resample`: a base model, its high-error points on the
# training set, new parameter sets around them solved in chunks, and models retrained with them.
# How many chunks there are is known only after the base model is trained: `select_high_error`
# is a checkpoint, and the set `results/{study}/resample/data.parquet` gathers whatever it made.


rule train_resample_model:
    input:
        unpack(resample_model_inputs),
    output:
        weights=layout.resample_file("{study}", "{which}/weights.pt"),
        spec=layout.resample_file("{study}", "{which}/spec.json"),
        history=layout.resample_file("{study}", "{which}/history.parquet"),
        metrics=layout.resample_file("{study}", "{which}/metrics.json"),
    log:
        layout.log("{study}", "resample", "train_{which}"),
    conda:
        FHNKIT_ENV
    threads: resample_threads
    resources:
        gpu=resample_gpus,
    params:
        identity=lambda w: model_identity(resample_model_spec(w)),
        spec=lambda w: ExecutionOnly(resample_model_spec(w)),
    script:
        "../scripts/train.py"


checkpoint select_high_error:
    input:
        model=layout.resample_file("{study}", "base/metrics.json"),
        train=layout.dataset("{study}", "train"),
    output:
        centers=layout.resample_file("{study}", "centers.parquet"),
        chunks=directory(layout.resample_file("{study}", "chunks")),
    log:
        layout.log("{study}", "resample", "select"),
    conda:
        FHNKIT_ENV
    params:
        study=study_setting,
        seed=lambda w: derive_seed(config["seed"], w.study, "resample"),
    script:
        "../scripts/select_high_error.py"


rule solve_resample_chunk:
    input:
        layout.resample_file("{study}", "chunks/{chunk}.parquet"),
    output:
        layout.resample_file("{study}", "solved/{chunk}.parquet"),
    log:
        layout.log("{study}", "resample", "solve_{chunk}"),
    conda:
        FHNKIT_ENV
    params:
        determinants=lambda w: data_determinants(config, w.study),
        config=lambda w: ExecutionOnly(data_job_config(config, w.study)),
    script:
        "../scripts/solve_chunk.py"


rule resampled_set:
    input:
        resampled_chunks,
    output:
        layout.dataset("{study}", layout.RESAMPLED),
    log:
        layout.log("{study}", "resample", "merge"),
    conda:
        FHNKIT_ENV
    params:
        problem=lambda w: study_config(w)["problem"],
    script:
        "../scripts/resampled_set.py"


rule error_maps:
    input:
        base=layout.resample_file("{study}", "base/metrics.json"),
        retrained=layout.resample_file("{study}", "retrained/metrics.json"),
        centers=layout.resample_file("{study}", "centers.parquet"),
        val=layout.dataset("{study}", "val"),
    output:
        maps=layout.resample_file("{study}", "error_maps.parquet"),
        row=layout.resample_file("{study}", "summary.json"),
        figure=report_item(
            layout.figure("error_maps_{study}"),
            "../report/error_maps.rst",
            "resampling",
            "Error maps before/after resampling",
            study="{study}",
        ),
    log:
        layout.log("{study}", "resample", "error_maps"),
    conda:
        FHNKIT_ENV
    params:
        problem=lambda w: study_config(w)["problem"],
    script:
        "../scripts/error_maps.py"


rule resampling_table:
    input:
        [layout.resample_file(study, "summary.json") for study in resample_studies()],
    output:
        csv=layout.analysis_table("resampling", "csv"),
        html=report_item(
            layout.analysis_table("resampling", "html"),
            "../report/resampling.rst",
            "resampling",
            "High-error resampling",
            kind="table",
        ),
    log:
        layout.log("analysis", "resampling"),
    conda:
        FHNKIT_ENV
    script:
        "../scripts/resampling_table.py"
