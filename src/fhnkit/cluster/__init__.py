"""Where jobs run: GPU slots on a workstation, ranks of an MPI grid, and what this machine can run.

Light on purpose (no torch): a training job takes its GPU here before torch is imported, so that
`CUDA_VISIBLE_DEVICES` is set in time.
"""

from .backends import available_backends, format_backends
from .devices import GpuSlot, NoFreeGpu, acquire_gpu, select_rank_device, visible_gpus
from .mpi import MPIUnavailable
from .mpi_grid import run_grid

__all__ = [
    "GpuSlot",
    "MPIUnavailable",
    "NoFreeGpu",
    "acquire_gpu",
    "available_backends",
    "format_backends",
    "run_grid",
    "select_rank_device",
    "visible_gpus",
]
