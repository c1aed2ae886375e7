# Train: one job per model of the grid (wildcards: study and model).


rule train:
    input:
        # train, val, and the region, march and resampled sets of the models that use them
        unpack(model_inputs),
    output:
        weights="results/{study}/models/{model}/weights.pt",
        spec="results/{study}/models/{model}/spec.json",
        history="results/{study}/models/{model}/history.parquet",
        # written last: its presence means the model finished
        metrics="results/{study}/models/{model}/metrics.json",
    params:
        spec=model_spec,
    threads: lambda w: model_spec(w)["training"]["threads"]
    resources:
        # one GPU slot per job (`--resources gpu=N` caps concurrent jobs; fhnkit.cluster.devices picks the device)
        gpu=lambda w: 0 if model_spec(w)["training"]["device"] == "cpu" else 1,
    log:
        "logs/{study}/train/{model}.log",
    script:
        "../scripts/train.py"
