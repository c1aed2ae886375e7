"""Compile and benchmark: trained networks built for inference and timed against the Euler solver.

`compile_model` is the rule `compile` (eager fp32, ONNX Runtime, torch.compile, TensorRT builds,
each checked against eager torch), `benchmark_study` the rule `benchmark` (network vs solver on the
same work, interleaved, with throughput and roofline fractions), `run_sweep` the rule `cost_sweep`.
`bench_solvers` measures the solvers alone (`fhnkit bench solver`).
"""

from ..lazy import lazy_exports

# imported on first use: a compile job loads torch and the builds, not numba, scipy and the benchmark
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".roofline": [],
    ".timing": [],
    ".benchmark": ["benchmark_model", "benchmark_study", "compile_and_benchmark", "reference_sets"],
    ".compiled": ["BACKENDS", "CompiledModel", "CompileMismatch", "compile_model", "compile_models", "load_builds"],
    ".cost_sweep": ["TIMING_COLUMNS", "run_sweep", "sweep_bench", "sweep_grid", "sweep_settings", "write_sweep"],
    ".solver_bench": ["bench_solvers", "default_c_source", "format_records"],
})
