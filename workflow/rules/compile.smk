# Compile: each trained network built for the hardware at hand (TensorRT, ONNX Runtime or
# torch.compile, as `compile.backends` prefers and the machine allows), checked against eager
# torch on its validation inputs; the benchmark then times every build against the solver.


rule compile:
    input:
        metrics="results/{study}/models/{model}/metrics.json",
        weights="results/{study}/models/{model}/weights.pt",
        val="results/{study}/data/val.parquet",
    output:
        # written last; the ONNX graph or TensorRT programs lie beside it
        "results/{study}/compiled/{model}/compiled.json",
    params:
        settings=config["compile"],
    threads: config["compile"]["threads"]
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    log:
        "logs/{study}/compile/{model}.log",
    script:
        "../scripts/compile.py"
