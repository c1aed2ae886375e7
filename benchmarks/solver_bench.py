#!/usr/bin/env python
"""Solver throughput at the physical limit: numba vs hand-written C on the CPU, CUDA vs the GPU rooflines.

    python benchmarks/solver_bench.py                  # 4M cells x 100 steps, float32 and float64
    python benchmarks/solver_bench.py --out solver.json

Same as `fhnkit bench solver` (see its --help); the C reference, src/fhnkit/inference/fhn_euler_ref.c,
is compiled by the benchmark itself with gcc -O3 -march=native -fopenmp.
"""

import sys

from fhnkit.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" in args:
        args[args.index("--out")] = "--output"
    sys.exit(main(["bench", "solver", *args]))
