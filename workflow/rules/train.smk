# Train: one job per model of the grid (wildcards: study and model).


rule train:
    input:
        # train, val, and the region, march and resampled sets of the models that use them; with fleets,
        # the marker of the model's fleet (the job moves the model in from there, or trains it alone)
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


# A fleet: up to `fleet` models of a study trained together in one job (fhnkit.training.train_fleet),
# each as it would train alone. It leaves them in its own directory; each model's `train` job moves its
# model into place, so that per-model targets, reruns and failures keep their meaning (a fleet's failure
# never deletes a finished model: models are not outputs of this rule).
rule train_fleet:
    input:
        fleet_inputs,
    output:
        touch(layout.fleet_marker("{study}", "{fleet}")),
    log:
        layout.log("{study}", "train", "fleet_{fleet}"),
    conda:
        "../../envs/fhnkit.yaml"
    threads: lambda w: fleet_resource(w, "threads")
    resources:
        gpu=lambda w: fleet_resource(w, "gpu"),
    params:
        specs=fleet_specs,
        data=lambda w: [model_data(spec) for spec in fleet_specs(w)],
        dirs=lambda w: [layout.fleet_model_dir(w.study, w.fleet, s["model"]) for s in fleet_specs(w)],
        compiled=lambda w: [layout.fleet_compiled_dir(w.study, w.fleet, s["model"]) for s in fleet_specs(w)],
        checkpoints=lambda w: layout.fleet_dir(w.study, w.fleet),
    script:
        "../scripts/train_fleet.py"
