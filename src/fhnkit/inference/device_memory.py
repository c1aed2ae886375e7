"""Device memory between benchmark sizes: what each library keeps, how to give it back, how it runs out.

Three libraries keep freed device memory for reuse: torch's caching allocator, CuPy's memory pool
(the CUDA Euler kernel's inputs and outputs) and ONNX Runtime's CUDA arena (which by default grows
by doubling and never shrinks). Between the benchmark's sizes (16M, 32M, 64M sets) all three hold
the previous size's buffers, so a larger size can run out of memory although the GPU could hold it.
`release_device_memory` empties all three; `is_out_of_memory` recognises each library's
out-of-memory error, so that a chunk that does not fit is left out whatever ran out.
"""

from __future__ import annotations

import gc
import sys

import torch

# ONNX Runtime reports a failed CUDA allocation as a RuntimeException (or Fail) with one of these
_ORT_OOM_TEXTS = ("failed to allocate memory", "out of memory", "cudaerrormemoryallocation")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says a device (or the host, for a CPU backend) ran out of memory: torch's
    OutOfMemoryError, CuPy's `cupy.cuda.memory.OutOfMemoryError` (or a CUDA runtime
    cudaErrorMemoryAllocation), or ONNX Runtime's failed allocation."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    kind = type(exc)
    if kind.__module__.startswith("cupy") and kind.__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    if kind.__module__.startswith(("cupy", "onnxruntime")) or kind.__name__ in ("RuntimeException", "Fail"):
        return any(marker in text for marker in _ORT_OOM_TEXTS)
    return False


def release_device_memory(device: str, builds=()) -> None:
    """Give every library's cached device memory back to the driver: torch's cache, CuPy's pools (only
    if CuPy is already in use: it is not imported here) and the ONNX Runtime arenas of `builds`."""
    gc.collect()  # drop tensors and arrays that only a reference cycle keeps alive
    for build in builds:
        build.release()
    if device != "cuda":
        return
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
