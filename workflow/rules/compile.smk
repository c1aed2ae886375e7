# Compile: each trained network built for the hardware at hand (TensorRT, ONNX Runtime or
# torch.compile, as `compile.backends` prefers and the machine allows), checked against eager
# torch on its validation inputs; the benchmark then times every build against the solver.


rule compile:
    input:
        metrics=layout.model_file("{study}", "{model}", "metrics.json"),
        weights=layout.model_file("{study}", "{model}", "weights.pt"),
        val=layout.dataset("{study}", "val"),
    output:
        # written last; the ONNX graph or TensorRT programs lie beside it
        layout.compiled_record("{study}", "{model}"),
    log:
        layout.log("{study}", "compile", "{model}"),
    conda:
        "../../envs/fhnkit.yaml"
    threads: config["compile"]["threads"]
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    params:
        settings=config["compile"],
    script:
        "../scripts/compile.py"
