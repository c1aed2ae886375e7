#!/usr/bin/env bash
# The wheels a bare GPU machine (no network) lacks to run fhnkit's whole workflow, Snakemake included:
# fetched here, on a machine with the package index, for the GPU machine's Python and platform.
# Run from anywhere; the wheels go to benchmarks/wheelhouse (ignored by git), at most 60 MB:
#   bash benchmarks/gpu_wheelhouse.sh [-d DIR] [--python 3.12] [--platform manylinux_2_39_x86_64]
#                                     [--limit-mb 60] [--list]
# What it fetches: pyproject.toml's dependencies and their closure, minus what the GPU image already
# has (benchmarks/gpu_image_packages.txt); never torch, triton, nvidia-*, cupy-*. --list prints that set
# (it asks the index, saves no wheel). benchmarks/gpu_check.sh installs the wheelhouse when it finds one.
# Needs Python >= 3.11 (or tomli) with pip >= 23 here.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/gpu_wheelhouse.py" "$@"
