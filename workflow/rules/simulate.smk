# Simulate: training and validation sets of each study, solved with the configured solver.
# With `snakemake --cache` (and SNAKEMAKE_OUTPUT_CACHE set) a data set is taken from the
# between-workflow cache when another run already made it: the cache key covers the rule's
# params, which hold everything that determines the bytes (seed, model, solver, sizes,
# sampler, fhnkit version), so two different data sets can never share an entry. A variant
# study of an ablation that changes nothing its data depend on takes its study's sets (renamed)
# instead of solving them again (fhnkit.plan.data_shared_with).


rule dataset:
    input:
        # an ablation's variant that leaves its data alone copies its study's data set
        shared_dataset,
    output:
        layout.dataset("{study}", "{split}"),
    log:
        layout.log("{study}", "data_{split}"),
    cache: "omit-software"
    conda:
        FHNKIT_ENV
    params:
        # everything that determines the bytes of the file (the study's name and the split are
        # written into its metadata): a change reruns the rule, and the cache key covers them all
        determinants=lambda w: data_determinants(config, w.study),
        # what the script reads: the determinants, and where the numbers are computed (the same bits anywhere)
        config=lambda w: ExecutionOnly(data_job_config(config, w.study)),
    script:
        "../scripts/dataset.py"
