# Train: one job per model of the grid (wildcards: study and model).


rule train:
    input:
        # train, val, and the region, march and resampled sets of the models that use them, and the marker of
        # the model's fleet job (the job moves the model in from there, or trains it alone)
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
        FHNKIT_ENV
    threads: model_threads
    resources:
        # one GPU slot per job (`--resources gpu=N` caps concurrent jobs; fhnkit.cluster.devices picks the device)
        gpu=model_gpus,
    params:
        # what makes the model (a change reruns the job); the whole spec, its threads and device too, for the script
        identity=lambda w: model_identity(model_spec(w)),
        spec=lambda w: ExecutionOnly(model_spec(w)),
    script:
        "../scripts/train.py"


# A study's fleets of one family (data terms only, or with a residual: fhnkit.plan.fleets.fleet_family): its
# models cut into fleets of up to `fleet` models, each fleet trained together (fhnkit.training.train_fleet),
# each model as it would train alone; with `fleet: 1` the job trains nothing.
# It leaves them in its own directory; each model's `train` job moves its model into place, so that per-model
# targets, reruns and failures keep their meaning (a fleet's failure never deletes a finished model: models
# are not outputs of this rule). How the models are cut into fleets is not part of what the job makes.
rule train_fleet:
    input:
        fleet_inputs,
    output:
        touch(layout.fleet_marker("{study}", "{family}")),
    log:
        layout.log("{study}", "train", "fleets_{family}"),
    conda:
        FHNKIT_ENV
    threads: lambda w: fleet_resource(w, "threads")
    resources:
        gpu=lambda w: fleet_resource(w, "gpu"),
    params:
        identity=lambda w: [model_identity(spec) for spec in fleet_specs(w)],
        specs=lambda w: ExecutionOnly(fleet_specs(w)),
        data=lambda w: [model_data(spec) for spec in fleet_specs(w)],
        fleets=lambda w: ExecutionOnly(FLEETS[(w.study, w.family)]),
        # the compile jobs rerun on these settings (and then build alone); the fleet job never does
        compile=lambda w: ExecutionOnly(config["compile"]),
    script:
        "../scripts/train_fleet.py"
