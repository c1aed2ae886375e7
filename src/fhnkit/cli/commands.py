"""What each `fhnkit` subcommand does: one thin wrapper over the package per subcommand (`cmd_<name>`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import versions, write_json, write_parquet
from ..cell.model import FHNParams
from ..cell.problems import OUTPUTS, i_app_of_k
from ..plan.config import load_config
from ..plan.grid import expand_study
from ..provenance import check_fits, check_problem, finished_model


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
    from ..cell.stability import euler_stable_dt
    from ..solvers.cpu import euler, steps_for  # numba: imported only when needed

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise UserError(f"cannot tell the format of {out}: use a .parquet or .csv extension")
    if args.K is not None and args.i_app is not None:
        raise UserError("give --i-app or --K (problem C), not both")
    params = FHNParams(k=args.k, a=args.a, epsilon=args.epsilon, beta=args.beta, gamma=args.gamma)
    if args.K is None:
        current, K = args.i_app or [0.0], [np.nan]
    else:
        current, K = i_app_of_k(np.asarray(args.K), args.k_to_i_app), args.K
    sizes = {"--u0": len(args.u0), "--w0": len(args.w0), "--i-app/--K": len(current)}
    if len(set(sizes.values()) - {1}) > 1:
        raise UserError(f"--u0, --w0 and --i-app/--K take 1 value or n values each, got {sizes}")
    u_lo, u_hi = min(0.0, *args.u0), max(1.0, *args.u0)
    bound = euler_stable_dt(params, u_lo, u_hi)
    if args.dt > bound:
        raise UserError(f"--dt {args.dt} is beyond the explicit Euler stability bound {bound:.3g} for these "
                        f"parameters and states (U in [{u_lo:g}, {u_hi:g}]): the solution would blow up; use a "
                        f"smaller --dt")
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
                       **{name: np.repeat(c, n_t) for name, c in zip(names, cols[: len(names)], strict=True)},
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
    from ..datasets.simulate import write_dataset

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
    from ..plan.model_spec import ModelSpec
    from ..training.train import train_model

    try:
        mapping = json.loads(Path(args.spec).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{args.spec} is not valid JSON: {exc}") from exc
    if not isinstance(mapping, dict):
        raise UserError(f"{args.spec} is not a model spec (a JSON object); write one with `fhnkit spec`")
    try:
        spec = ModelSpec.from_mapping(mapping)
    except ValueError as exc:
        raise UserError(f"{args.spec}: {exc}") from exc
    done = Path(args.out) / "metrics.json"
    if done.exists() and not args.force:
        raise UserError(f"{args.out} already holds a finished model ({done}); choose another --out, or pass "
                        "--force to replace it")
    if args.force:
        done.unlink(missing_ok=True)  # what is in --out no longer counts as finished
    m = train_model(spec, args.train, args.val, args.out, progress=not args.no_progress)
    if m["status"] == "failed":
        raise UserError(f"{m['error']} (recorded as failed in {args.out}/metrics.json)", code=3)
    print(f"{m['study']}/{m['model']}: {m['iterations']} iterations, mean error {m['mean_err']:.4e}, "
          f"max error {m['max_err']:.4e}, {m['iter_time_s']:.3e} s/iteration; written to {args.out}")
    return 0


def cmd_train_grid(args) -> int:
    from ..cluster.mpi import MPIUnavailable, get_comm
    from ..cluster.mpi_grid import run_grid

    try:
        comm = get_comm()
    except MPIUnavailable as exc:
        raise UserError(str(exc)) from exc
    summary = run_grid(args.config, args.study, args.results, args.logs, comm)
    return 1 if summary.get("failed") else 0


def cmd_evaluate(args) -> int:
    from ..nets import load_model
    from ..nets.evaluate import evaluate_frame

    record = finished_model(args.model)
    model = load_model(args.model)
    check_fits(f"the model in {args.model}", record["problem"], args.data)
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
    from ..cluster.backends import available_backends, format_backends

    report = available_backends()
    print(json.dumps(report, indent=2) if args.json else format_backends(report))
    return 0


def cmd_gpu_check(args) -> int:
    from ..gpu_check import CHECKS, run_checks, write_outcomes

    unknown = sorted(set(args.only or []) - {name for name, _, _ in CHECKS})
    if unknown:
        raise UserError(f"unknown check(s) {unknown}; choose from {[name for name, _, _ in CHECKS]}")
    config_path = Path(args.config) if args.config else Path("config/config.yaml")
    study_config = None
    if args.config or config_path.is_file():
        study_config = load_config(config_path)
        if "B_S" not in study_config["studies"]:
            raise UserError(f"{config_path} has no study B_S for the fleet throughput check")
    outcomes = run_checks(args.device, args.quick, study_config, args.only, echo=lambda line: print(line, flush=True))
    if args.output:
        write_outcomes(outcomes, args.output)
    failed = [o.name for o in outcomes if o.status == "FAIL"]
    skipped = sum(o.status == "SKIP" for o in outcomes)
    print(f"gpu-check: {sum(o.status == 'PASS' for o in outcomes)} passed, {len(failed)} failed, {skipped} skipped"
          + (f" (failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


def cmd_bench(args) -> int:
    if args.target == "network":
        return _bench_network(args)
    if args.target == "train":
        return _bench_train(args)
    from ..inference.solver_bench import bench_solvers, default_c_source, format_records

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

    from ..analysis.bench_table import PAGE_COLUMNS, benchmark_rows
    from ..inference.benchmark import compile_and_benchmark

    missing = [name for name in ("model", "data", "config") if getattr(args, name) is None]
    if missing:
        raise UserError(f"bench network needs {', '.join('--' + m for m in missing)}; see fhnkit bench --help")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device cuda, but torch {torch.__version__} sees no CUDA device; use --device auto or cpu")
    config = load_config(args.config)
    study = _study(config, args.study)
    check_problem(args.model, finished_model(args.model), study, config["studies"][study]["problem"])
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


def _bench_train(args) -> int:
    """A study's models trained as a fleet and one at a time: model-iterations per second of each."""
    from ..training.throughput import bench_train

    if not args.config_path:
        raise UserError("bench train needs the configuration: fhnkit bench train CONFIG --study S")
    if args.iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {args.iterations}")
    config = load_config(args.config_path)
    study = _study(config, args.study)
    try:
        result = bench_train(config, study, args.iterations, args.device, args.threads, args.replicas, args.classes,
                             solo=not args.no_solo, graphs=not args.no_graphs, plain=args.plain)
    except ValueError as err:  # no model of those classes in the study
        raise UserError(str(err)) from None
    for rec in result["records"]:
        peak, syncs = rec["peak_memory_bytes"], rec["host_syncs_per_iteration"]
        print(f"{rec['mode']:>5}: {rec['models']} models x {rec['iterations']} iterations in {rec['wall_s']:.2f} s "
              f"on {rec['device']} ({rec['threads']} threads, {rec['groups']} computations per iteration): "
              f"{rec['model_iterations_per_s']:.0f} model-iterations/s; peak memory "
              f"{'unknown' if peak is None else f'{peak / 2**20:,.0f} MiB'} ({rec['peak_memory_of']})"
              + ("" if syncs is None else f"; {syncs:.2f} host syncs per iteration")
              + (f"; {', '.join(rec['execution'])}" if rec["mode"] == "fleet" else ""))
    skipped = f" (left out: {', '.join(result['skipped'])})" if result["skipped"] else ""
    if result["ratio"] is not None:
        print(f"fleet / solo: {result['ratio']:.2f}x{skipped}")
    if result["plain_ratio"] is not None:
        print(f"fleet / plain PyTorch loop: {result['plain_ratio']:.2f}x")
    elif skipped:
        print(skipped.strip())
    if args.output:
        write_json({**result, "versions": versions()}, args.output)
        print(f"wrote {args.output}")
    return 0

