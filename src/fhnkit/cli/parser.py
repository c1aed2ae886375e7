"""The `fhnkit` command line's parser and entry point: the subcommand table, `main` and exit statuses.

Exit status: 0 success, 2 a user error (bad configuration, missing file, bad
option value: one message on stderr, no traceback), 3 a diverged training run.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap

import pyarrow as pa
import yaml

from .. import __version__
from ..cell.problems import K_TO_I_APP
from ..plan import ConfigError
from ..provenance import MismatchError, ModelFileError
from .commands import (
    UserError,
    cmd_bench,
    cmd_dataset,
    cmd_env,
    cmd_evaluate,
    cmd_gpu_check,
    cmd_grid,
    cmd_simulate,
    cmd_spec,
    cmd_train,
    cmd_train_grid,
    cmd_validate,
)

CONFIG = (("config",), dict(metavar="CONFIG", help="YAML configuration file"))
STUDY = (("--study", "-s"), dict(help="study name (optional when the config has one study)"))
def _number(kind, low=None, above=None, name="a number"):
    """An argparse type: a finite `kind` (int or float) >= low or > above, else a usage error saying so."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if (low is not None and value < low) or (above is not None and value <= above):
            bound = f">= {low}" if low is not None else f"> {above}"
            raise argparse.ArgumentTypeError(f"{text} is not allowed: must be {bound}")
        return value

    return parse


COUNT = _number(int, low=1, name="a whole number")  # sizes, steps, threads, repeats
NONNEGATIVE = _number(int, low=0, name="a whole number")
POSITIVE = _number(float, above=0.0)  # times, steps in model time units
FINITE = _number(float)

JSON = (("--json",), dict(action="store_true", help="print JSON instead of a table"))
FLOAT = dict(type=FINITE, nargs="+")

COMMANDS = [
    ("simulate", cmd_simulate, "solve the FHN model with explicit Euler",
     "Solve one or several parameter sets with the numba Euler kernel. --u0, --w0 and --i-app (or --K) "
     "each take one or several values, broadcast against each other (lengths 1 or n). Times are in the "
     "model's dimensionless time units; U, W and I_app are dimensionless.",
     "examples:\n  fhnkit simulate --u0 0.5 --w0 0 --t-end 20\n"
     "  fhnkit simulate --u0 0.2 0.5 0.8 --w0 0 --i-app 0.1 --t-end 50 -o runs.parquet\n"
     "  fhnkit simulate --u0 0.5 --w0 0 --K 0 0.5 1 -o problem_c.csv",
     [(("--u0",), dict(FLOAT, default=[0.5], help="initial U, dimensionless (default: 0.5)")),
      (("--w0",), dict(FLOAT, default=[0.0], help="initial W, dimensionless (default: 0)")),
      (("--i-app",), dict(FLOAT, help="applied current I_app, dimensionless (default: 0)")),
      (("--K",), dict(FLOAT, help="problem C parameter K in [0, 1], dimensionless; replaces --i-app by "
                                   "I_app = base + span*K")),
      (("--k-to-i-app",), dict(type=FINITE, nargs=2, default=list(K_TO_I_APP), metavar=("BASE", "SPAN"),
                               help="problem C map of K to I_app, dimensionless (default: %(default)s)")),
      (("--dt",), dict(type=POSITIVE, default=0.01, help="Euler time step, model time units (default: 0.01)")),
      (("--t-end",), dict(type=POSITIVE, default=20.0, help="final time, model time units (default: 20)")),
      (("--save-every",), dict(type=COUNT, default=10, help="store the state every N steps, plus t=0 "
                                                          "(steps; default: 10)")),
      (("--precision",), dict(choices=["float32", "float64"], default="float64",
                              help="arithmetic precision (default: float64)")),
      *[((f"--{name}",), dict(type=FINITE if name == "a" else POSITIVE, default=value, metavar=name,
                              help=f"FHN parameter {name}, {unit} (default: {value})"))
        for name, value, unit in (("k", 10.0, "1/model time unit"), ("a", 0.4, "dimensionless"),
                                  ("epsilon", 0.2, "1/model time unit"), ("beta", 0.2, "dimensionless"),
                                  ("gamma", 0.8, "dimensionless"))],
      (("-o", "--output"), dict(help="output file, .parquet (with metadata) or .csv; a short table on "
                                     "stdout when omitted"))]),
    ("validate", cmd_validate, "check a configuration against the schema",
     "Validate CONFIG (schema, ranges, divisibility of time steps) and count the models of each study. "
     "Exit 0 if valid, 2 with every problem listed otherwise.",
     "example:\n  fhnkit validate config/config.yaml", [CONFIG]),
    ("grid", cmd_grid, "list the models of the architecture grid",
     "List every model of the grid: study, name, class, architecture, neurons, shape, batch size and seed.",
     "examples:\n  fhnkit grid config/config.yaml\n  fhnkit grid config/config.yaml --study A_scarce --json",
     [CONFIG, STUDY, JSON]),
    ("dataset", cmd_dataset, "solve and write one of a study's data sets",
     "Sample a study's parameter space (seeded) and solve it with the config's data solver "
     "(data_solver: RK4 in float64 by default); write Parquet.",
     "example:\n  fhnkit dataset config/config.yaml --study A_scarce --split train -o train.parquet",
     [CONFIG, STUDY, (("--split",), dict(choices=["train", "val", "region", "march"], required=True, help="which set")),
      (("-o", "--output"), dict(required=True, help="Parquet file to write"))]),
    ("spec", cmd_spec, "write one model's training spec as JSON",
     "Write the training spec of one model of the grid (see `fhnkit grid` for names), for `fhnkit train`.",
     "example:\n  fhnkit spec config/config.yaml --study A --model pinn_silu8_bs10_s0 -o spec.json",
     [CONFIG, STUDY, (("--model", "-m"), dict(required=True, help="model name, as listed by `fhnkit grid`")),
      (("-o", "--output"), dict(required=True, help="JSON file to write"))]),
    ("train", cmd_train, "train one model from its spec",
     "Train one model (Adam, validation every training.validate_every iterations) and write weights.pt, "
     "spec.json, history.parquet and metrics.json into --out. A run whose loss becomes NaN or infinite stops, "
     "is recorded with status failed in metrics.json, and exits 3.",
     "example:\n  fhnkit train --spec spec.json --train train.parquet --val val.parquet --out models/m1",
     [(("--spec",), dict(required=True, help="training spec JSON from `fhnkit spec`")),
      (("--train",), dict(required=True, help="training set Parquet from `fhnkit dataset`")),
      (("--val",), dict(required=True, help="validation set Parquet from `fhnkit dataset`")),
      (("--out",), dict(required=True, help="output directory of the trained model")),
      (("--force",), dict(action="store_true", help="replace a finished model already in --out")),
      (("--no-progress",), dict(action="store_true", help="no progress bar"))]),
    ("train-grid", cmd_train_grid, "train a whole grid, spread over MPI ranks",
     "Train every unfinished model of the config's grid (or of --study): run under `mpirun -n N` or `srun`, "
     "rank 0 hands the models out, most expensive first, to whichever rank is free; rank r trains on GPU "
     "r % n_gpus of the GPUs it sees. Models are written where the Snakemake rule `train` writes them "
     "(RESULTS/{study}/models/{model}/, logs in LOGS/{study}/train/{model}.log); finished ones (metrics.json "
     "exists) are skipped, interrupted ones resume; missing data sets are made first. Without MPI it trains "
     "the models one after the other. Exit 1 when a model's training failed (not diverged-and-recorded).",
     "examples:\n  mpirun -n 8 fhnkit train-grid config/config.yaml\n"
     "  srun -n 16 fhnkit train-grid config/config.yaml --study B_S --study C\n"
     "  fhnkit train-grid config/config.yaml --results results   (one process)\n"
     "then: snakemake --cores all (takes the trained models as they are; see README, MPI)",
     [CONFIG, (("--study", "-s"), dict(action="append", help="train only this study (repeatable; default: all)")),
      (("--results",), dict(default="results", help="results directory (default: results)")),
      (("--logs",), dict(help="log directory (default: logs beside the results directory)"))]),
    ("evaluate", cmd_evaluate, "error of a trained model on a data set",
     "Mean, median and max over the rows of DATA of the error |U_pred - U| + |W_pred - W| (thesis eq. 3.3), "
     "dimensionless.", "example:\n  fhnkit evaluate --model models/m1 --data val.parquet --json",
     [(("--model",), dict(required=True, help="directory written by `fhnkit train`")),
      (("--data",), dict(required=True, help="Parquet data set with the model's input columns and U, W")),
      JSON]),
    ("bench", cmd_bench, "time the Euler solvers (bench solver), a trained network (bench network) or training "
                         "a study's models as a fleet against one at a time (bench train)",
     "solver: time every available Euler solver: the numba CPU kernels (exact, as data generation needs, and "
     "fast, folded with FMA, as the benchmark times) next to a hand-written C reference built twice (exact, "
     "and with FMA contraction; gcc -O3 -march=native, OpenMP, SIMD; built on the fly) on the same inputs and "
     "threads, and the CUDA "
     "kernel with CUDA events and its fraction of the GPU's bandwidth and compute rooflines. Reports "
     "cell-steps per second (cells x Euler steps / median seconds). "
     "network: compile one trained model as the compile stage does (TensorRT fp32/fp16 on a GPU, else ONNX "
     "Runtime, torch.compile; each checked against eager torch on --data) and time every build beside the "
     "Euler solver on the config's benchmark work (the CUDA kernel and CUDA events on a GPU), with "
     "throughput and roofline fractions; the same numbers as the workflow's benchmark rule. "
     "train: train a study's models for --iterations each, as a fleet (a few batched computations per "
     "iteration) and one at a time, side by side in this process; reports model-iterations per second, the "
     "computations per iteration, peak memory and, on CUDA, host synchronisations per iteration. --replicas K "
     "scales the grid over K times its seeds, --classes keeps some classes, --no-solo skips the one-at-a-time "
     "side (for grids too large to wait for), --plain adds the textbook PyTorch loop of the same networks.",
     "examples:\n  fhnkit bench solver\n  fhnkit bench solver --cells 1000000 --precision float32 -o solver.json\n"
     "  fhnkit bench network --config config/config.yaml --study B_S --model results/B_S/models/M \\\n"
     "      --data results/B_S/data/val.parquet --gpu-cells 16000000 -o bench.json\n"
     "  fhnkit bench train config/config.yaml --study B_S --iterations 500 -o train.json\n"
     "  fhnkit bench train config/config.yaml --study B_S --replicas 64 --no-solo --device cuda",
     [(("target",), dict(choices=["solver", "network", "train"], help="what to benchmark")),
      (("config_path",), dict(nargs="?", metavar="CONFIG", help="train: the configuration")),
      (("--iterations",), dict(type=COUNT, default=1000, help="train: iterations of every model, one validation "
                                                             "at the end (default: 1000)")),
      (("--replicas",), dict(type=COUNT, default=1, help="train: the grid over K times its seeds (default: 1)")),
      (("--classes",), dict(nargs="+", choices=["ddnn", "pinn", "itnn"],
                            help="train: only models of these classes")),
      (("--no-solo",), dict(action="store_true", help="train: time the fleet only, not the models one at a time")),
      (("--plain",), dict(action="store_true", help="train: also time the textbook PyTorch loop (Adam, MSE, "
                                                     "torch.randint batches) of the same networks, one at a time "
                                                     "(models of one data term)")),
      (("--no-graphs",), dict(action="store_true", help="train: on a GPU, run the fleet's iterations as they are, "
                                                        "not replayed from CUDA graphs (to measure what graphs buy)")),
      (("--cells",), dict(type=COUNT, help="CPU parameter sets (default: solver 4,000,000; network: the "
                                         "config's benchmark.n_sets)")),
      (("--gpu-cells",), dict(type=COUNT, nargs="+", help="GPU parameter sets (default: solver 16M 32M 64M; "
                                                        "network: benchmark.gpu_n_sets)")),
      (("--steps",), dict(type=COUNT, default=100, help="solver: Euler steps of dt = 0.1 (default: 100, to t = 10)")),
      (("--save-every",), dict(type=COUNT, default=10, help="solver: store every N steps (default: 10: 10 points)")),
      (("--precision",), dict(choices=["float32", "float64"], nargs="+", default=["float32", "float64"],
                              help="solver: precisions to time (default: both)")),
      (("--threads",), dict(type=COUNT, help="CPU threads (default: solver 2; network: benchmark.threads)")),
      (("--repeats",), dict(type=COUNT, help="timed repeats (default: solver 7; network: benchmark.repeats)")),
      (("--warmup",), dict(type=NONNEGATIVE, help="untimed runs first (default: solver 2; network: benchmark.warmup)")),
      (("--c-source",), dict(help="solver: C reference source (default: fhnkit/inference/fhn_euler_ref.c)")),
      (("--no-c",), dict(action="store_true", help="solver: skip the C builds (exact and with FMA)")),
      (("--config",), dict(help="network: the configuration the model was trained with")),
      STUDY,
      (("--model",), dict(help="network: directory written by `fhnkit train` or the train rule")),
      (("--data",), dict(help="network: validation set Parquet the compiled builds are checked on")),
      (("--device",), dict(choices=["auto", "cpu", "cuda"], default="auto",
                           help="network: where to compile and run; train: where to train (default: auto, a GPU "
                                "when present)")),
      (("--out-dir",), dict(help="network: keep the compiled builds here (default: a temporary directory)")),
      (("-o", "--output"), dict(help="write the records as JSON"))]),
    ("env", cmd_env, "which compute backends are usable here",
     "Probe numba, CUDA, CuPy, TensorRT, Torch-TensorRT, ONNX Runtime, torch and mpi4py; say why one is not "
     "usable.", "examples:\n  fhnkit env\n  fhnkit env --json", [JSON]),
    ("gpu-check", cmd_gpu_check, "run every GPU path once and print PASS/FAIL per check",
     "The CUDA kernel bit for bit against numba (1M cells, f32 and f64) and timed at 16M/32M/64M cells "
     "against its roofline (the bound and why); a data set made on CUDA against numba's (same rows, same "
     "identity); training on the device "
     "with host synchronisations per iteration counted (one model, and a fleet); fleet vs one-at-a-time "
     "throughput with the thesis grid's device-hours; ONNX Runtime and torch.compile builds checked against "
     "eager and reloaded as the benchmark loads them; the benchmark of one model; the whole workflow of a tiny "
     "config on CUDA through Snakemake to report.html (pipeline). At most 8 minutes on an H100/H200, no network "
     "(Snakemake from the wheelhouse of benchmarks/gpu_wheelhouse.sh); what the machine lacks is skipped with "
     "the reason. Exit status 1 if a check fails.",
     "examples:\n  fhnkit gpu-check -o gpu_check.json\n  fhnkit gpu-check --only kernel_exact_f32 kernel_roofline\n"
     "  fhnkit gpu-check --device cpu --quick      (the checks' plumbing on a CPU)",
     [(("--device",), dict(choices=["cuda", "cpu"], default="cuda", help="where to run (default: cuda)")),
      (("--quick",), dict(action="store_true", help="small sizes (seconds; not the numbers to report)")),
      (("--config",), dict(help="the config whose B_S study the fleet throughput check trains (default: "
                                "config/config.yaml if present, else the check's own small study)")),
      (("--only",), dict(nargs="+", metavar="CHECK", help="run only these checks")),
      (("-o", "--output"), dict(help="write every check's numbers as JSON"))]),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhnkit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Neural-network surrogates of the FitzHugh-Nagumo cell model, reproducibly.",
        epilog="one model by hand:\n  fhnkit validate c.yaml && fhnkit grid c.yaml\n"
               "  fhnkit dataset c.yaml --study A --split train -o train.parquet   (and --split val)\n"
               "  fhnkit spec c.yaml --study A --model MODEL -o spec.json\n"
               "  fhnkit train --spec spec.json --train train.parquet --val val.parquet --out m\n"
               "  fhnkit evaluate --model m --data val.parquet\n"
               "exit status: 0 ok, 2 user error (bad config, missing file), 3 training diverged")
    parser.add_argument("--version", action="version", version=f"fhnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, func, short, description, epilog, arguments in COMMANDS:
        p = sub.add_parser(name, help=short, description=textwrap.fill(description, 79), epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        for flags, kwargs in arguments:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(func=func)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("fhnkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = _user_error_code(exc, args.command)
        if code is None:  # a bug, not a user error: keep the traceback
            raise
        message = f"file not found: {exc.filename or exc}" if isinstance(exc, FileNotFoundError) else exc
        print(f"fhnkit {args.command}: error: {message}", file=sys.stderr)
        return code


def _user_error_code(exc: Exception, command: str) -> int | None:
    """Exit status of an exception caused by the user's input, None for anything else."""
    if isinstance(exc, UserError):
        return exc.code
    if isinstance(exc, (ConfigError, yaml.YAMLError, OSError, pa.ArrowException, MismatchError, ModelFileError)):
        return 2  # bad config, unreadable or missing file, not a Parquet file, model and data that do not fit
    if isinstance(exc, ValueError) and command in ("validate", "grid", "dataset", "spec"):
        return 2  # raised from the config: a grid above max_models, a data set that cannot be built
    return None
