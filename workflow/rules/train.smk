# Train: one job per model of the grid (wildcards: study and model).


rule train:
    input:
        # train, val, and the region, march and resampled sets of the models that use them
        unpack(model_inputs),
    output:
        weights=layout.model_file("{study}", "{model}", "weights.pt"),
        spec=layout.model_file("{study}", "{model}", "spec.json"),
        history=layout.model_file("{study}", "{model}", "history.parquet"),
        # written last: its presence means the model finished
        metrics=layout.model_file("{study}", "{model}", "metrics.json"),
    log:
        layout.train_log("{study}", "{model}"),
    conda:
        "../../envs/fhnkit.yaml"
    threads: lambda w: model_spec(w)["training"]["threads"]
    resources:
        # one GPU slot per job (`--resources gpu=N` caps concurrent jobs; fhnkit.cluster.devices picks the device)
        gpu=lambda w: 0 if model_spec(w)["training"]["device"] == "cpu" else 1,
    params:
        spec=model_spec,
    script:
        "../scripts/train.py"
