"""The `fhnkit` command line: one thin wrapper over the package per subcommand.

Exit status: 0 success, 2 a user error (bad configuration, missing file, bad
option value: one message on stderr, no traceback), 3 a diverged training run.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from . import __version__
from .artifacts import versions, write_json, write_parquet
from .plan.config import ConfigError, load_config
from .plan.grid import expand_study
from .cell.model import FHNParams
from .cell.problems import OUTPUTS


class UserError(Exception):
    """A mistake in the command's arguments or inputs: printed without a traceback, exit `code`."""

    def __init__(self, message, code: int = 2):
        super().__init__(message)
        self.code = code


def _study(config: dict, name: str | None) -> str:
    """The study named by --study, or the config's only study when --study is omitted."""
    names = list(config["studies"])
    if name not in names and not (name is None and len(names) == 1):
        raise UserError(f"{'no --study given' if name is None else f'unknown study {name!r}'}; "
                        f"studies in this config: {names}")
    return name or names[0]


# --------------------------------------------------------------------------- subcommands


def cmd_simulate(args) -> int:
    from .solvers.cpu import euler, steps_for  # numba: imported only when needed

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise UserError(f"cannot tell the format of {out}: use a .parquet or .csv extension")
    if args.K is not None and args.i_app is not None:
        raise UserError("give --i-app or --K (problem C), not both")
    params = FHNParams(k=args.k, a=args.a, epsilon=args.epsilon, beta=args.beta, gamma=args.gamma)
    if args.K is None:
        current, K = args.i_app or [0.0], [np.nan]
    else:
        current, K = args.k_to_i_app[0] + args.k_to_i_app[1] * np.asarray(args.K), args.K
    sizes = {"--u0": len(args.u0), "--w0": len(args.w0), "--i-app/--K": len(current)}
    if len(set(sizes.values()) - {1}) > 1:
        raise UserError(f"--u0, --w0 and --i-app/--K take 1 value or n values each, got {sizes}")
    try:
        n_steps = steps_for(args.t_end, args.dt)
        if args.save_every < 1 or n_steps % args.save_every:
            raise ValueError(f"--save-every {args.save_every} must be >= 1 and divide the {n_steps} steps "
                             f"of t_end/dt (so that t_end is stored)")
        cols = np.broadcast_arrays(*(np.asarray(c, float) for c in (args.u0, args.w0, current, K)))
        times, U, W = euler(*cols[:3], params, args.dt, n_steps, args.save_every, args.precision)
    except ValueError as exc:  # a dt that does not divide t_end
        raise UserError(exc) from exc
    n_t, n = U.shape
    names = ("U0", "W0", "I_app") + (("K",) if args.K is not None else ())
    df = pd.DataFrame({"set": np.repeat(np.arange(n), n_t), "t": np.tile(times, n),
                       **{name: np.repeat(c, n_t) for name, c in zip(names, cols)},
                       "U": U.T.reshape(-1), "W": W.T.reshape(-1)})
    if out is None:
        print(f"{n} parameter set(s) x {n_t} stored times (dt={args.dt}, every {args.save_every} steps)")
        print(df.to_string(index=False, max_rows=20, min_rows=10))
        return 0
    if out.suffix.lower() == ".csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False, float_format="%.17g")
    else:
        write_parquet(df, out, {"command": "simulate", "fhn": params.as_dict(), "dt": args.dt,
                                "t_end": args.t_end, "n_steps": n_steps, "save_every": args.save_every,
                                "precision": args.precision, "versions": versions(),
                                "k_to_i_app": None if args.K is None else list(args.k_to_i_app)})
    print(f"wrote {len(df)} rows ({n} parameter set(s) x {n_t} times) to {out}")
    return 0


def cmd_validate(args) -> int:
    config = load_config(args.config)
    counts = {name: len(expand_study(config, name)) for name in config["studies"]}
    print(f"{args.config}: valid; studies: {len(counts)}, models: {sum(counts.values())}")
    for name, count in counts.items():
        print(f"  {name}: problem {config['studies'][name]['problem']}, {count} models")
    return 0


def cmd_grid(args) -> int:
    columns = ["study", "model", "class", "arch", "neurons", "shape", "batch_size", "seed"]
    config = load_config(args.config)
    names = [_study(config, args.study)] if args.study else list(config["studies"])
    rows = [{k: s[k] for k in columns} for name in names for s in expand_study(config, name)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(pd.DataFrame(rows, columns=columns).to_string(index=False))
        print(f"{len(rows)} models")
    return 0


def cmd_dataset(args) -> int:
    from .datasets.simulate import write_dataset

    config = load_config(args.config)
    study = _study(config, args.study)
    df = write_dataset(config, study, args.split, args.output)
    print(f"wrote {len(df)} rows of {study}/{args.split} to {args.output}")
    return 0


def cmd_spec(args) -> int:
    config = load_config(args.config)
    study = _study(config, args.study)
    specs = {s["model"]: s for s in expand_study(config, study)}
    if args.model not in specs:
        raise UserError(f"no model {args.model!r} in study {study} ({len(specs)} models, e.g. "
                        f"{list(specs)[:3]}); list them with: fhnkit grid CONFIG --study {study}")
    spec = specs[args.model]
    write_json(spec, args.output)
    print(f"wrote the spec of {study}/{args.model} to {args.output}")
    return 0


def cmd_train(args) -> int:
    from .training.train import train_model

    keys = ("study", "model", "class", "layers", "batch_size", "torch_seed", "training", "problem_settings")

    try:
        spec = json.loads(Path(args.spec).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{args.spec} is not valid JSON: {exc}") from exc
    missing = [k for k in keys if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise UserError(f"{args.spec} is not a model spec (missing {missing}); write one with `fhnkit spec`")
    m = train_model(spec, args.train, args.val, args.out, progress=not args.no_progress)
    if m["status"] == "failed":
        raise UserError(f"{m['error']} (recorded as failed in {args.out}/metrics.json)", code=3)
    print(f"{m['study']}/{m['model']}: {m['iterations']} iterations, mean error {m['mean_err']:.4e}, "
          f"max error {m['max_err']:.4e}, {m['iter_time_s']:.3e} s/iteration; written to {args.out}")
    return 0


def cmd_train_grid(args) -> int:
    from .cluster.mpi_grid import MPIUnavailable, get_comm, run_grid

    try:
        comm = get_comm()
    except MPIUnavailable as exc:
        raise UserError(str(exc)) from exc
    summary = run_grid(args.config, args.study, args.results, args.logs, comm)
    return 1 if summary.get("failed") else 0


def cmd_evaluate(args) -> int:
    from .nets.evaluate import evaluate_frame
    from .nets.mlp import load_model

    for name in ("spec.json", "weights.pt"):
        if not (Path(args.model) / name).is_file():
            raise UserError(f"{args.model} is not a trained model directory (no {name}); see `fhnkit train`")
    model = load_model(args.model)
    df = pd.read_parquet(args.data)
    missing = [c for c in model.spec["inputs"] + OUTPUTS if c not in df.columns]
    if missing:
        raise UserError(f"{args.data} lacks the column(s) {missing} that this model needs")
    result = evaluate_frame(model, df)
    print(json.dumps(result, indent=2) if args.json else
          f"{result['n']} samples; error |dU| + |dW| (eq. 3.3, dimensionless): mean {result['mean_err']:.6e}, "
          f"median {result['median_err']:.6e}, max {result['max_err']:.6e}")
    return 0


def cmd_env(args) -> int:
    from .cluster.backends import available_backends, format_backends

    report = available_backends()
    print(json.dumps(report, indent=2) if args.json else format_backends(report))
    return 0


def cmd_bench(args) -> int:
    if args.target == "network":
        return _bench_network(args)
    from .inference.solver_bench import bench_solvers, default_c_source, format_records

    c_source = None if args.no_c else Path(args.c_source) if args.c_source else default_c_source()
    result = bench_solvers(args.cells or 4_000_000, args.steps, args.save_every, args.precision, args.threads or 2,
                           args.repeats or 7, 2 if args.warmup is None else args.warmup, c_source,
                           args.gpu_cells or [16_000_000, 32_000_000, 64_000_000])
    print(format_records(result))
    if c_source is None:
        print("C reference: not measured (no source; pass --c-source PATH to a C reference)")
    if args.output:
        write_json({**result, "versions": versions()}, args.output)
        print(f"wrote {args.output}")
    return 0


def _bench_network(args) -> int:
    """Compile one trained model as the compile stage does (into --out-dir or a temporary directory),
    check it, and time every build beside the Euler solver on the config's benchmark work."""
    import torch

    from .inference.benchmark import compile_and_benchmark
    from .analysis.bench_table import PAGE_COLUMNS, benchmark_rows

    missing = [name for name in ("model", "data", "config") if getattr(args, name) is None]
    if missing:
        raise UserError(f"bench network needs {', '.join('--' + m for m in missing)}; see fhnkit bench --help")
    if not (Path(args.model) / "weights.pt").is_file():
        raise UserError(f"{args.model} is not a trained model directory (no weights.pt); see `fhnkit train`")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device cuda, but torch {torch.__version__} sees no CUDA device; use --device auto or cpu")
    config = load_config(args.config)
    study = _study(config, args.study)
    overrides = {"n_sets": args.cells, "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
                 "gpu_n_sets": args.gpu_cells}
    result = compile_and_benchmark(args.model, args.data, config, study, overrides, args.device, args.out_dir)
    for backend, why in result["compiled"]["skipped"].items():
        print(f"skipped {backend}: {why}")
    table = pd.DataFrame(benchmark_rows(result))
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.precision", 3):
        print(table[[c for c in PAGE_COLUMNS if c not in ("study", "model")]].to_string(index=False))
    print(f"roofline peaks: {table['peaks'].iloc[0]}")
    if args.output:
        write_json(result, args.output)
        print(f"wrote {args.output}")
    return 0


# --------------------------------------------------------------------------- parser

CONFIG = (("config",), dict(metavar="CONFIG", help="YAML configuration file"))
STUDY = (("--study", "-s"), dict(help="study name (optional when the config has one study)"))
JSON = (("--json",), dict(action="store_true", help="print JSON instead of a table"))
FLOAT = dict(type=float, nargs="+")

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
      (("--k-to-i-app",), dict(type=float, nargs=2, default=[0.08, 0.04], metavar=("BASE", "SPAN"),
                               help="problem C map of K to I_app, dimensionless (default: 0.08 0.04)")),
      (("--dt",), dict(type=float, default=0.01, help="Euler time step, model time units (default: 0.01)")),
      (("--t-end",), dict(type=float, default=20.0, help="final time, model time units (default: 20)")),
      (("--save-every",), dict(type=int, default=10, help="store the state every N steps, plus t=0 "
                                                          "(steps; default: 10)")),
      (("--precision",), dict(choices=["float32", "float64"], default="float64",
                              help="arithmetic precision (default: float64)")),
      *[((f"--{name}",), dict(type=float, default=value, metavar=name,
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
     "examples:\n  fhnkit grid config.yaml\n  fhnkit grid config.yaml --study A_scarce --json", [CONFIG, STUDY, JSON]),
    ("dataset", cmd_dataset, "solve and write a study's training or validation set",
     "Sample a study's parameter space (seeded) and solve it with the Euler kernel; write Parquet.",
     "example:\n  fhnkit dataset config.yaml --study A --split train -o train.parquet",
     [CONFIG, STUDY, (("--split",), dict(choices=["train", "val"], required=True, help="which split")),
      (("-o", "--output"), dict(required=True, help="Parquet file to write"))]),
    ("spec", cmd_spec, "write one model's training spec as JSON",
     "Write the training spec of one model of the grid (see `fhnkit grid` for names), for `fhnkit train`.",
     "example:\n  fhnkit spec config.yaml --study A --model pinn_silu8_bs10_s0 -o spec.json",
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
      (("--no-progress",), dict(action="store_true", help="no progress bar"))]),
    ("train-grid", cmd_train_grid, "train a whole grid, spread over MPI ranks",
     "Train every unfinished model of the config's grid (or of --study): run under `mpirun -n N` or `srun`, "
     "rank 0 hands the models out, most expensive first, to whichever rank is free; rank r trains on GPU "
     "r % n_gpus of the GPUs it sees. Models are written where the Snakemake rule `train` writes them "
     "(RESULTS/{study}/models/{model}/, logs in LOGS/{study}/train/{model}.log); finished ones (metrics.json "
     "exists) are skipped, interrupted ones resume; missing data sets are made first. Without MPI it trains "
     "the models one after the other. Exit 1 when a model's training failed (not diverged-and-recorded).",
     "examples:\n  mpirun -n 8 fhnkit train-grid config.yaml\n"
     "  srun -n 16 fhnkit train-grid config.yaml --study B_S --study C\n"
     "  fhnkit train-grid config.yaml --results results   (one process)\n"
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
    ("bench", cmd_bench, "time the Euler solvers (bench solver) or a trained network (bench network)",
     "solver: time every available Euler solver: the numba CPU kernel next to a hand-written C reference "
     "(gcc -O3 -march=native, OpenMP, SIMD; built on the fly) on the same inputs and threads, and the CUDA "
     "kernel with CUDA events and its fraction of the GPU's bandwidth and compute rooflines. Reports "
     "cell-steps per second (cells x Euler steps / median seconds). "
     "network: compile one trained model as the compile stage does (TensorRT fp32/fp16 on a GPU, else ONNX "
     "Runtime, torch.compile; each checked against eager torch on --data) and time every build beside the "
     "Euler solver on the config's benchmark work (the CUDA kernel and CUDA events on a GPU), with "
     "throughput and roofline fractions; the same numbers as the workflow's benchmark rule.",
     "examples:\n  fhnkit bench solver\n  fhnkit bench solver --cells 1000000 --precision float32 -o solver.json\n"
     "  fhnkit bench network --config config.yaml --study B_S --model results/B_S/models/M \\\n"
     "      --data results/B_S/data/val.parquet --gpu-cells 16000000 -o bench.json",
     [(("target",), dict(choices=["solver", "network"], help="what to benchmark")),
      (("--cells",), dict(type=int, help="CPU parameter sets (default: solver 4,000,000; network: the "
                                         "config's benchmark.n_sets)")),
      (("--gpu-cells",), dict(type=int, nargs="+", help="GPU parameter sets (default: solver 16M 32M 64M; "
                                                        "network: benchmark.gpu_n_sets)")),
      (("--steps",), dict(type=int, default=100, help="solver: Euler steps of dt = 0.1 (default: 100, to t = 10)")),
      (("--save-every",), dict(type=int, default=10, help="solver: store every N steps (default: 10: 10 points)")),
      (("--precision",), dict(choices=["float32", "float64"], nargs="+", default=["float32", "float64"],
                              help="solver: precisions to time (default: both)")),
      (("--threads",), dict(type=int, help="CPU threads (default: solver 2; network: benchmark.threads)")),
      (("--repeats",), dict(type=int, help="timed repeats (default: solver 7; network: benchmark.repeats)")),
      (("--warmup",), dict(type=int, help="untimed runs first (default: solver 2; network: benchmark.warmup)")),
      (("--c-source",), dict(help="solver: C reference source (default: the fhn_euler_ref.c shipped in fhnkit/inference/)")),
      (("--no-c",), dict(action="store_true", help="solver: skip the C reference")),
      (("--config",), dict(help="network: the configuration the model was trained with")),
      STUDY,
      (("--model",), dict(help="network: directory written by `fhnkit train` or the train rule")),
      (("--data",), dict(help="network: validation set Parquet the compiled builds are checked on")),
      (("--device",), dict(choices=["auto", "cpu", "cuda"], default="auto",
                           help="network: where to compile and run (default: auto, a GPU when present)")),
      (("--out-dir",), dict(help="network: keep the compiled builds here (default: a temporary directory)")),
      (("-o", "--output"), dict(help="write the records as JSON"))]),
    ("env", cmd_env, "which compute backends are usable here",
     "Probe numba, CUDA, CuPy, TensorRT, Torch-TensorRT, ONNX Runtime, torch and mpi4py; say why one is not "
     "usable.", "examples:\n  fhnkit env\n  fhnkit env --json", [JSON]),
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
    if isinstance(exc, (ConfigError, yaml.YAMLError, OSError, pa.ArrowException)):
        return 2  # bad config, unreadable or missing file, not a Parquet file
    if isinstance(exc, ValueError) and command in ("validate", "grid", "dataset", "spec"):
        return 2  # raised from the config: a grid above max_models, a data set that cannot be built
    return None
