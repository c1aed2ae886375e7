"""The GPU check: every GPU path of fhnkit run once, in minutes, with one PASS/FAIL/SKIP line per check.

`fhnkit gpu-check` (or `benchmarks/gpu_check.sh`) needs only what a GPU machine has: PyTorch with
CUDA, CuPy, numba (ONNX Runtime, TensorRT and Snakemake are used where present, skipped where not).
It runs without a network in under 8 minutes on one H100/H200. The checks, in order:

- `kernel_exact_f32`, `kernel_exact_f64`: the CUDA Euler kernel of data generation equals the numba
  kernel bit for bit on 1M cells;
- `kernel_roofline`: the benchmark's (fast) kernel timed with CUDA events at 16M/32M/64M cells,
  with its fraction of the bandwidth roofline, the roof that bounds it (bandwidth or FP32 instruction
  issue) and its fraction of that, and its difference from the exact kernel;
- `dataset_cuda`: a data set made with the CUDA solver has the rows (bit for bit) and the identity (config
  hash) of the one made with numba; only its provenance says where it ran;
- `training`: one model and a fleet trained on the device, host synchronisations per iteration counted;
- `fleet_throughput`: `fhnkit bench train` on DDNN fleets of about 36 and 2,300 models, PINN fleets of 8 and
  256, iterator networks and the mixed B_S_techniques grid (fleet vs one at a time for the small ones), and
  `config/thesis.yaml`'s training in device-hours from each class's own rate;
- `compile_onnxruntime`, `compile_torch_compile`: built, checked against eager, and reloaded as the
  benchmark loads them, then run at the benchmark's batch sizes;
- `bench_network`: the benchmark of one trained model against the solver (`fhnkit bench network`);
- `pipeline`: the whole Snakemake DAG of a tiny config on CUDA (data, fleets, compile with eager fp16,
  benchmark, cost sweep) to `report.html`, whose reproduction table must test Table 11 and the tensor-core
  finding (`check_pipeline`; needs Snakemake, e.g. from the wheelhouse of `benchmarks/gpu_wheelhouse.sh`).

On a machine without CUDA the GPU-only checks are skipped with the reason; the others run on the CPU
(`--device cpu`, which the test suite uses with `--quick`).
"""


from ._context import CHECK_CONFIG, Context, Outcome, Skip
from ._fleet_throughput import device_hours, fleets_to_time, model_iterations_by_class
from ._pipeline import (
    GPU_FINDINGS,
    PIPELINE_CONFIG,
    TOTAL_BUDGET_S,
    check_pipeline,
    gpu_finding_verdicts,
    pipeline_config,
    pipeline_timeout,
    run_logged,
    snakemake_command,
)
from ._runner import CHECKS, run_check, run_checks, write_outcomes

__all__ = [
    "CHECKS",
    "CHECK_CONFIG",
    "GPU_FINDINGS",
    "PIPELINE_CONFIG",
    "TOTAL_BUDGET_S",
    "Context",
    "Outcome",
    "Skip",
    "check_pipeline",
    "device_hours",
    "fleets_to_time",
    "gpu_finding_verdicts",
    "model_iterations_by_class",
    "pipeline_config",
    "pipeline_timeout",
    "run_check",
    "run_checks",
    "run_logged",
    "snakemake_command",
    "write_outcomes",
]
