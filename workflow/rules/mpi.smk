# Train the whole grid as ONE MPI job (a target only, not part of `all`):
#
#   snakemake --cores 16 train_grid_mpi                  # local: mpiexec -n 16
#   snakemake --cores 16 train_grid_mpi --set-resources 'train_grid_mpi:mpi="mpirun --oversubscribe"'
#   snakemake --executor slurm --set-resources train_grid_mpi:tasks=64 train_grid_mpi   # srun, see profiles/
#   snakemake --cores all                                # then: the analysis takes the trained models
#
# Snakemake makes the data sets (with their metadata and the between-workflow cache); `fhnkit
# train-grid` then trains every unfinished model over the MPI ranks, writing exactly what the rule
# `train` writes, at the same paths. Those files carry no Snakemake metadata of a `train` job, so a
# later run takes them as they are and goes on with the benchmark and the analysis.


rule train_grid_mpi_config:
    output:
        layout.mpi_file("config.yaml"),
    log:
        layout.log("mpi", "config"),
    params:
        config=config,  # the validated config of this run (a change rewrites the file)
    run:
        # no conda: directive (Snakemake allows none with run:): this runs in Snakemake's own process
        import yaml

        with open(output[0], "w") as fh:
            yaml.safe_dump(dict(params.config), fh, sort_keys=False)


rule train_grid_mpi:
    input:
        config=layout.mpi_file("config.yaml"),
        # every data set that some model trains or validates on (as the rule `train`'s inputs)
        data=sorted({path for spec in SPECS.values() for path in model_data(spec).values()}),
    output:
        touch(layout.mpi_file("train_grid.done")),
    log:
        layout.log("mpi", "train_grid"),
    conda:
        FHNKIT_MPI_ENV
    threads: every_core
    resources:
        mpi="mpiexec",
        tasks=lambda wildcards, threads: threads,
    params:
        python=fhnkit_python(),  # where fhnkit is installed: this rule's conda env, or Snakemake's
    shell:
        "{resources.mpi} -n {resources.tasks} {params.python:q} -m fhnkit train-grid {input.config:q} "
        f"--results {layout.RESULTS} --logs {layout.LOGS} > {{log:q}} 2>&1"
