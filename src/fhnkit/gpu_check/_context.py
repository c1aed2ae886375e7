"""What the GPU checks share: their outcome, the reason for a skip, their context and their small study."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# A small problem-B study: enough to train, compile and benchmark in seconds on any device.
CHECK_CONFIG = """
seed: 11
data_solver: {method: euler, dt: 0.01, precision: float64, backend: auto}
benchmark: {n_sets: 20000, gpu_n_sets: [1000000], repeats: 3, warmup: 1, threads: 2}
compile: {backends: [onnxruntime, torch_compile], precisions: [fp32]}
studies:
  B_check:
    problem: B
    i_app: 0.0
    t_max: 10
    times_per_trajectory: 11
    train: {n: 200, sampler: lhs}
    val: {n: 50, sampler: uniform}
    grid:
      layers: [2, 3]
      layer_configs: [[silu, 16], [tanh, 32]]
      classes: [ddnn]
      batch_size: [128]
    training: {iterations: 200, validate_every: 100, lr: 0.003}
  A_check:  # PINNs, for the fleet throughput of that class when no config with A_scarce is given
    problem: A
    t_max: 20
    train: {n: 10, sampler: grid}
    val: {n: 100, sampler: uniform}
    grid:
      layers: [2]
      layer_configs: [[tanh, 16], [tanh, 32]]
      classes: [pinn]
      batch_size: [10]
    training: {iterations: 200, validate_every: 100, lr: 0.003, batch: {physics: 256, initial: 1}}
"""


@dataclass
class Outcome:
    """One check's result: PASS, FAIL or SKIP, a one-line detail, and its numbers."""

    name: str
    status: str
    detail: str
    numbers: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail} ({self.seconds:.1f} s)"


class Skip(Exception):
    """A check that cannot run here; the message says why."""


@dataclass
class Context:
    """What the checks share: the device, sizes, a scratch directory, the check config and a trained model."""

    device: str
    quick: bool
    workdir: Path
    config: dict
    study_config: dict | None = None  # the config of `fleet_throughput` (the default config's B_S)
    model_dir: Path | None = None
    data: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # when the checks began (the time budget's origin)

    @property
    def kernel_cells(self) -> int:
        return 20_000 if self.quick else 1_000_000

    @property
    def roofline_cells(self) -> list[int]:
        return [200_000] if self.quick else [16_000_000, 32_000_000, 64_000_000]


def cuda_kernels():
    """The CUDA solver's module, or Skip with the reason its kernels (exact and fast) cannot run here."""
    from ..solvers import cuda

    for exact in (True, False):
        usable, why = cuda.cuda_available(exact=exact)
        if not usable:
            raise Skip(f"no usable {'exact' if exact else 'fast'} CUDA kernel: {why}")
    return cuda


def check_cells(n: int, dtype, seed: int = 5):
    """`n` initial states and currents over the problems' ranges (U0, W0, I_app)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.1, 1.1, n).astype(dtype), rng.uniform(0.0, 0.2, n).astype(dtype),
            rng.uniform(0.0, 0.15, n).astype(dtype))


