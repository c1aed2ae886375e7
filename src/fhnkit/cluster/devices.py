"""Which GPU a training process uses, when several processes share one machine.

Snakemake run locally (`snakemake --cores 16 --resources gpu=4`) starts up to
four training jobs at once but does not tell them which GPU to use: every one
would land on GPU 0. `acquire_gpu()` gives each job one free GPU slot: it takes
an exclusive, non-blocking `flock` on `<lock dir>/gpu<id>.lock`, keeps the file
open for the rest of the process's life and sets `CUDA_VISIBLE_DEVICES` to that
one device, so that torch's `cuda:0` is the slot's GPU. The kernel drops the lock
when the process ends, however it ends (SIGKILL included): no stale slots.
When every slot is taken the job waits, polling, up to `FHNKIT_GPU_WAIT`
seconds (default 3600), then fails with a message saying what to do.

Under MPI, `select_rank_device(local_rank)` puts rank r on GPU `r % n_gpus`.

The GPUs are, in this order of precedence:

- under SLURM (`SLURM_JOB_ID` set) with `CUDA_VISIBLE_DEVICES` set: those, the
  job's own GPUs, whatever else is set;
- `FHNKIT_GPUS`: a count (`4` = the first four visible devices, 0-3 when
  `CUDA_VISIBLE_DEVICES` is unset) or a comma-separated list of ids (`0,2` or
  GPU UUIDs); `0` or empty turns GPU slots off;
- `CUDA_VISIBLE_DEVICES` when set;
- the GPUs NVML (the NVIDIA driver's library) reports, counted without
  initialising CUDA in this process (which would freeze its device list).

Nothing is done when the job is to run on the CPU, when there is no GPU, when
only one GPU is visible (a SLURM job with `--gpus=1`: SLURM has already chosen
it), or when `CUDA_VISIBLE_DEVICES` names a single device.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 3600.0
POLL_S = 0.5


class NoFreeGpu(RuntimeError):
    """Every GPU slot stayed busy for the whole wait."""


@dataclass
class GpuSlot:
    """A held GPU slot: the device id now in CUDA_VISIBLE_DEVICES and the open, locked file."""

    device: str
    lock_path: Path
    fd: int | None

    def release(self) -> None:
        """Give the slot back early (it is also given back when the process ends)."""
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None


def _nvml_count() -> int:
    """GPUs the NVIDIA driver sees, via NVML; 0 without a driver. Does not initialise CUDA."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return 0
    try:
        if nvml.nvmlInit_v2() != 0:
            return 0
        count = ctypes.c_uint(0)
        ok = nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0
        nvml.nvmlShutdown()
        return int(count.value) if ok else 0
    except AttributeError:
        return 0


def visible_gpus(env=None) -> list[str]:
    """The GPU ids that processes here may share (see the module docstring for the precedence)."""
    env = os.environ if env is None else env
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    visible = None
    if cvd is not None:
        ids = [s.strip() for s in cvd.split(",") if s.strip()]
        # "-1", "NoDevFiles" (SLURM without GPUs) or an empty string mean no GPU
        visible = [] if not ids or ids[0].startswith("-") or ids[0] == "NoDevFiles" else ids
        if env.get("SLURM_JOB_ID"):  # SLURM chose this job's GPUs: they are the only ones
            return visible
    spec = env.get("FHNKIT_GPUS")
    if spec is not None:
        spec = spec.strip()
        if spec.isdigit():  # a count: the first N visible devices
            n = int(spec)
            return visible[:n] if visible and len(visible) >= n else [str(i) for i in range(n)]
        return [s.strip() for s in spec.split(",") if s.strip()]
    if visible is not None:
        return visible
    return [str(i) for i in range(_nvml_count())]


def default_lock_dir(env=None) -> Path:
    """`FHNKIT_GPU_LOCK_DIR`, else a per-user directory in the temp dir (per SLURM job under SLURM,
    whose device ids are the job's own). Point several users at one directory to share slots."""
    env = os.environ if env is None else env
    if env.get("FHNKIT_GPU_LOCK_DIR"):
        return Path(env["FHNKIT_GPU_LOCK_DIR"])
    name = f"fhnkit-gpu-locks-{os.getuid()}"
    if env.get("SLURM_JOB_ID"):
        name += f"-slurm{env['SLURM_JOB_ID']}"
    return Path(tempfile.gettempdir()) / name


def wants_gpu(device: str | None) -> bool:
    """Whether a training device setting may use a GPU slot: "auto" and "cuda" do; "cpu" and a
    pinned "cuda:N" (the user chose) do not."""
    return (device or "auto") in ("auto", "cuda", "gpu")


def _lock_name(device: str) -> str:
    return "gpu" + re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
    return fd


def acquire_gpu(device_setting: str | None = "auto", lock_dir=None, wait_s: float | None = None,
                env=None) -> GpuSlot | None:
    """Take a free GPU slot for this process and set CUDA_VISIBLE_DEVICES to it; call before
    anything initialises CUDA. Returns the held slot, or None when there is nothing to choose
    (CPU device, no GPU, one GPU). Waits up to `wait_s` (default: env FHNKIT_GPU_WAIT, else 3600 s)
    while every slot is busy, then raises NoFreeGpu."""
    env = os.environ if env is None else env
    if not wants_gpu(device_setting):
        return None
    gpus = visible_gpus(env)
    if len(gpus) <= 1:
        return None
    if wait_s is None:
        wait_s = float(env.get("FHNKIT_GPU_WAIT", DEFAULT_WAIT_S))
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir(env)
    lock_dir.mkdir(parents=True, exist_ok=True)
    # start at a different slot per process, so that simultaneous starts rarely contend
    start = os.getpid() % len(gpus)
    order = gpus[start:] + gpus[:start]
    deadline, warned = time.monotonic() + wait_s, False
    while True:
        for gpu in order:
            path = lock_dir / _lock_name(gpu)
            fd = _try_lock(path)
            if fd is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
                log.info("GPU slot %s of %s: CUDA_VISIBLE_DEVICES=%s (lock %s)", gpu, ",".join(gpus), gpu, path)
                return GpuSlot(gpu, path, fd)
        if time.monotonic() >= deadline:
            raise NoFreeGpu(
                f"all {len(gpus)} GPU slots ({','.join(gpus)}, locks in {lock_dir}) stayed busy for {wait_s:g} s; "
                f"run snakemake with --resources gpu={len(gpus)} so that it starts no more GPU jobs than GPUs, "
                "or raise FHNKIT_GPU_WAIT")
        if not warned:
            log.warning("all %d GPU slots (%s) are busy; waiting up to %g s for one (FHNKIT_GPU_WAIT)",
                        len(gpus), ",".join(gpus), wait_s)
            warned = True
        time.sleep(POLL_S)


def select_rank_device(local_rank: int, env=None) -> str | None:
    """Put an MPI rank on GPU `local_rank % n_gpus` of the visible GPUs by setting
    CUDA_VISIBLE_DEVICES (before CUDA initialises); returns the id, or None without GPUs."""
    env = os.environ if env is None else env
    gpus = visible_gpus(env)
    if not gpus:
        return None
    gpu = gpus[local_rank % len(gpus)]
    env["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu
