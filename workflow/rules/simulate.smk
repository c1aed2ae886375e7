# Simulate: training and validation sets of each study, solved with the Euler kernel.


rule dataset:
    output:
        "results/{study}/data/{split}.parquet",
    params:
        # everything that determines the bytes of the file: a change reruns the rule
        determinants=lambda w: data_determinants(config, w.study),
    log:
        "logs/{study}/data_{split}.log",
    script:
        "../scripts/dataset.py"
