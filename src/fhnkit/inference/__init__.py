"""Compile and benchmark: trained networks built for inference and timed against the Euler solver.

`compile_model` is the rule `compile` (eager fp32, ONNX Runtime, torch.compile, TensorRT builds,
each checked against eager torch), `benchmark_study` the rule `benchmark` (network vs solver on the
same work, interleaved, with throughput and roofline fractions), `run_sweep` the rule `cost_sweep`.
`bench_solvers` measures the solvers alone (`fhnkit bench solver`).
"""

from . import roofline, timing
from .benchmark import benchmark_model, benchmark_study, compile_and_benchmark, reference_sets
from .compiled import BACKENDS, CompiledModel, CompileMismatch, compile_model, load_builds
from .cost_sweep import TIMING_COLUMNS, run_sweep, sweep_bench, sweep_grid, sweep_settings, write_sweep
from .solver_bench import bench_solvers, default_c_source, format_records

__all__ = [
    "BACKENDS",
    "TIMING_COLUMNS",
    "CompileMismatch",
    "CompiledModel",
    "bench_solvers",
    "benchmark_model",
    "benchmark_study",
    "compile_and_benchmark",
    "compile_model",
    "default_c_source",
    "format_records",
    "load_builds",
    "reference_sets",
    "roofline",
    "run_sweep",
    "sweep_bench",
    "sweep_grid",
    "sweep_settings",
    "timing",
    "write_sweep",
]
