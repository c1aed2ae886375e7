"""MPI plumbing of `fhnkit train-grid`: the communicator, node-local ranks, and rank 0's work queue.

Nonblocking requests are completed by polling with short sleeps, so that a rank waiting for work
does not spin on a core that a training rank needs.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

TAG_ASK, TAG_WORK = 11, 12
POLL_S = 0.02
# environment variables by which launchers announce more than one process
LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS")


class MPIUnavailable(RuntimeError):
    """Started by an MPI launcher with several processes, but mpi4py cannot be imported."""


def launched_with_several_ranks(env=None) -> bool:
    env = os.environ if env is None else env
    return any(env.get(v, "1").isdigit() and int(env.get(v, "1")) > 1 for v in LAUNCHER_SIZE_VARS)


def get_comm():
    """MPI.COMM_WORLD, or None when mpi4py is missing and no launcher started several processes."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        if launched_with_several_ranks():
            raise MPIUnavailable(
                f"started by an MPI launcher with several processes but mpi4py cannot be imported ({exc}); "
                "install it with: pip install 'fhnkit[mpi]' (needs an MPI library, e.g. apt-get install "
                "libopenmpi-dev), or run without mpirun/srun as one process") from exc
        return None
    return MPI.COMM_WORLD


def local_rank(comm) -> int:
    """This process's rank among the ranks on its node."""
    if comm is None or comm.Get_size() == 1:
        return 0
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    rank = node.Get_rank()
    node.Free()
    return rank


def wait(request):
    """Complete a nonblocking request, sleeping between tests (a blocking MPI wait spins on a core
    that a training rank needs)."""
    while True:
        done, value = request.test()
        if done:
            return value
        time.sleep(POLL_S)


class Dispatcher:
    """Rank 0's work queue: its own main thread takes from it directly; a background thread answers
    the other ranks' requests (each request carries the results of the asker's previous work)."""

    def __init__(self, comm, order: list):
        self.comm, self.queue, self.lock = comm, deque(order), threading.Lock()
        self.results: list[dict] = []
        self.thread = threading.Thread(target=self._serve, name="fhnkit-dispatch", daemon=True)
        self.error: BaseException | None = None

    def take(self):
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def _serve(self):
        try:
            active = self.comm.Get_size() - 1
            while active:
                asker, result = wait(self.comm.irecv(tag=TAG_ASK))
                if result is not None:  # the asker's results of its previous work (a list)
                    self.results.extend(result)
                job = self.take()
                self.comm.send(job, dest=asker, tag=TAG_WORK)
                active -= job is None
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            self.error = exc
