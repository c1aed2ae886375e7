# Compile: each trained network built for the hardware at hand (TensorRT, ONNX Runtime or
# torch.compile, as `compile.backends` prefers and the machine allows), checked against eager
# torch on its validation inputs; the benchmark then times every build against the solver.


rule compile:
    input:
        # with fleets, also the marker of the model's fleet (the job moves the builds the fleet made, or builds)
        unpack(compile_inputs),
    output:
        # written last; the ONNX graph or TensorRT programs lie beside it
        layout.compiled_record("{study}", "{model}"),
    log:
        layout.log("{study}", "compile", "{model}"),
    conda:
        FHNKIT_ENV
    threads: config["compile"]["threads"]
    resources:
        gpu=0 if config["compile"]["device"] == "cpu" else 1,
    params:
        settings=config["compile"],
    script:
        "../scripts/compile.py"
