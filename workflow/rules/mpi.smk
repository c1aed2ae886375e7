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
        "results/mpi/config.yaml",
    params:
        config=config,  # the validated config of this run (a change rewrites the file)
    log:
        "logs/mpi/config.log",
    run:
        import yaml

        with open(output[0], "w") as fh:
            yaml.safe_dump(dict(params.config), fh, sort_keys=False)


rule train_grid_mpi:
    input:
        config="results/mpi/config.yaml",
        # every data set that some model trains or validates on (as the rule `train`'s inputs)
        data=sorted({path for spec in SPECS.values() for path in model_data(spec).values()}),
    output:
        touch("results/mpi/train_grid.done"),
    params:
        python=sys.executable,  # the environment Snakemake runs in, where fhnkit is installed
    threads: every_core
    resources:
        mpi="mpiexec",
        tasks=lambda wildcards, threads: threads,
    log:
        "logs/mpi/train_grid.log",
    shell:
        "{resources.mpi} -n {resources.tasks} {params.python:q} -m fhnkit train-grid {input.config:q} "
        "--results results --logs logs > {log:q} 2>&1"
