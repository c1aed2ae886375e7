"""The check `pipeline`: the whole Snakemake DAG of a tiny config on CUDA, to report.html."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ._context import CHECK_CONFIG, Context, Outcome, Skip, cuda_kernels

# --------------------------------------------------------------------------- the whole DAG (check `pipeline`)

TOTAL_BUDGET_S = 480  # benchmarks/gpu_check.sh stops the whole check (every check) after this many seconds
PIPELINE_BUDGET_S = 330  # the pipeline check's own limit: the Snakemake run and its report together
PIPELINE_MIN_S = 150  # less than this left of TOTAL_BUDGET_S: skipped (run it alone: --only pipeline)
PIPELINE_MARGIN_S = 20  # of TOTAL_BUDGET_S, kept for what follows the check (the outcomes' JSON)
GPU_FINDINGS = ("table11", "tensor_cores")  # the reproduction rows only a GPU run can test
KEEP_ENV = "FHNKIT_PIPELINE_KEEP"  # a folder: the pipeline check copies its report, table and logs there

# Six problem-B models in two fleets of the tiny workflow's kind, everything on CUDA: data by the CUDA
# Euler kernel, fleets trained on the GPU, eager fp32 and fp16 builds (fp16 is built only by TensorRT or
# eager, `compiled.plan`: TensorRT engines would take minutes, and a usable ONNX Runtime or torch.compile
# chosen first would leave fp16 out), the benchmark at 1M sets and the cost sweep (the fp16 speedup of the
# tensor-core finding) on three widths x two depths.
def pipeline_config() -> dict:
    """The pipeline check's config, as written to its --configfile (defaults not filled in): the check's own
    problem-B study (`CHECK_CONFIG`) with 1- and 2-layer networks, every stage on CUDA."""
    check = yaml.safe_load(CHECK_CONFIG)
    study = copy.deepcopy(check["studies"]["B_check"])
    study["grid"]["layers"] = [1, 2]
    study["training"]["device"] = "cuda"
    return {"seed": check["seed"], "fleet": 4, "data_solver": {**check["data_solver"], "backend": "cuda"},
            "compile": {"backends": ["eager"], "precisions": ["fp32", "fp16"], "device": "cuda"},
            "benchmark": {**check["benchmark"], "n_sets": 2000},
            "cost_sweep": {"widths": [16, 64, 256], "layers": [1, 2], "n_sets": 2000, "repeats": 3, "warmup": 1},
            "studies": {"B_gpu": study}}


PIPELINE_CONFIG = yaml.safe_dump(pipeline_config(), sort_keys=False)


def snakefile() -> Path:
    """The workflow of the checkout these sources are in (src/fhnkit -> workflow/Snakefile)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "Snakefile"


def snakemake_command(workdir, configfile, *args: str) -> list[str]:
    """`python -m snakemake` on this checkout's workflow, in `workdir`, with `configfile` alone."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile()), "--directory", str(workdir),
            "--configfile", str(configfile), *args]


def _pipeline_env() -> dict:
    """This process's environment, with the folder fhnkit is imported from first on PYTHONPATH (the
    workflow's scripts import it) and unbuffered output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop `proc`'s process group (a process it leads with its children): SIGTERM, then SIGKILL 10 s later."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


def run_logged(cmd: list[str], log_path: Path, timeout: float) -> int | None:
    """Run `cmd` in a process group of its own, its output appended to `log_path`; its exit status, or
    None when it ran past `timeout` seconds. A group still running when this returns or is interrupted
    (out of time, Ctrl-C, gpu_check.sh's timeout) is stopped: Snakemake and every job it started."""
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=_pipeline_env(),
                                start_new_session=True)
        try:
            return proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.poll() is None:
                _stop_group(proc)


def gpu_finding_verdicts(table_path) -> dict[str, list[str]]:
    """{finding key: its rows' verdicts} of `GPU_FINDINGS` in a run's reproduction table (the CSV of rule
    `reproduction`; a finding may have a row per build)."""
    import pandas as pd

    from ..analysis.reproduction import FINDINGS

    table = pd.read_csv(table_path)
    claims = {f.key: f.claim for f in FINDINGS if f.key in GPU_FINDINGS}
    return {key: list(table.loc[table["finding"] == claim, "verdict"]) for key, claim in claims.items()}


def pipeline_timeout(ctx: Context) -> float:
    """Seconds the pipeline check may take: its own budget, within what is left of the whole check's;
    Skip when too little is left."""
    left = TOTAL_BUDGET_S - PIPELINE_MARGIN_S - (time.monotonic() - ctx.started)
    if left < PIPELINE_MIN_S:
        raise Skip(f"{left:.0f} s left of the check's {TOTAL_BUDGET_S} s, below the {PIPELINE_MIN_S} s it needs: "
                   "run it alone (--only pipeline)")
    return min(PIPELINE_BUDGET_S, left)


def _failure(workdir: Path, log_path: Path) -> str:
    """Why a Snakemake run failed, in a line: the failed rule and the last line of its job's log (the
    exception), else the last line of the Snakemake log that names an error, else its last line."""
    text = log_path.read_text(errors="replace")
    rules = list(re.finditer(r"Error in rule (\w+):", text))
    if rules:
        job_log = re.search(r"log: (\S+)", text[rules[-1].end():])
        path = workdir / job_log.group(1) if job_log else None
        if path is not None and path.is_file():
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
            return f"rule {rules[-1].group(1)}: {(lines or ['(empty log)'])[-1][:300]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[-1][:300]


def _keep(workdir: Path) -> None:
    """Copy the run's report, reproduction table, Snakemake log and job logs to $FHNKIT_PIPELINE_KEEP."""
    import shutil

    from ..plan import layout

    keep = os.environ.get(KEEP_ENV)
    if not keep:
        return
    keep = Path(keep)
    keep.mkdir(parents=True, exist_ok=True)
    for name in ("report.html", "snakemake.log", layout.analysis_table("reproduction", "csv")):
        if (workdir / name).is_file():
            shutil.copy2(workdir / name, keep / Path(name).name)
    if (workdir / "logs").is_dir():
        shutil.copytree(workdir / "logs", keep / "logs", dirs_exist_ok=True)


def check_pipeline(ctx: Context) -> Outcome:
    """The whole workflow on CUDA: `PIPELINE_CONFIG` run by Snakemake to the end (data on CUDA, fleets on
    CUDA, compile with eager fp16, benchmark and cost sweep on CUDA), then `--report report.html`. PASS
    when the report exists and the run's reproduction table (results/analysis/reproduction.csv) tests
    Table 11 and the tensor-core finding, whatever their verdicts.

    CUDA only (on a CPU both findings are 'not tested' by design, and the CPU run of the workflow is
    tests/test_workflow.py's); skipped with the reason when Snakemake cannot be imported, when this fhnkit
    is not a checkout with workflow/Snakefile, or when less than PIPELINE_MIN_S is left of TOTAL_BUDGET_S.
    Takes at most PIPELINE_BUDGET_S (Snakemake and its jobs are stopped then)."""
    import importlib.util

    import torch

    from ..analysis.reproduction import NOT_TESTED
    from ..plan import layout

    if ctx.device != "cuda" or not torch.cuda.is_available():
        raise Skip("a CUDA-only check: its config puts every stage on CUDA (run with --device cuda on a GPU)")
    cuda_kernels()  # the data sets are made by the CUDA kernel
    if importlib.util.find_spec("snakemake") is None:
        raise Skip("snakemake cannot be imported (offline: install the wheelhouse of benchmarks/gpu_wheelhouse.sh)")
    if not snakefile().is_file():
        raise Skip(f"no workflow at {snakefile()} (fhnkit not run from its checkout)")
    timeout = pipeline_timeout(ctx)
    workdir = ctx.workdir / "pipeline"
    status, seconds = run_pipeline(workdir, timeout)
    _keep(workdir)
    if status is None:
        return Outcome("pipeline", "FAIL", f"Snakemake did not finish within {timeout:.0f} s: "
                       f"{_failure(workdir, workdir / 'snakemake.log')}", seconds)
    if status != 0:
        log_text = (workdir / "snakemake.log").read_text(errors="replace")
        return Outcome("pipeline", "FAIL", f"Snakemake exited with {status}: "
                       f"{_failure(workdir, workdir / 'snakemake.log')}", {**seconds, "log_tail": log_text[-4000:]})
    verdicts = gpu_finding_verdicts(workdir / layout.analysis_table("reproduction", "csv"))
    tested = {key: bool(v) and NOT_TESTED not in v for key, v in verdicts.items()}
    ok = (workdir / "report.html").is_file() and all(tested.values())
    return Outcome("pipeline", "PASS" if ok else "FAIL",
                   f"tiny config on CUDA to report.html in {seconds['total_s']:.0f} s (Snakemake run "
                   f"{seconds['run_s']:.0f} s); "
                   + "; ".join(f"{key}: {', '.join(v) or 'no row'}" for key, v in verdicts.items()),
                   {**seconds, "verdicts": verdicts, "tested": tested})


def run_pipeline(workdir: Path, timeout: float) -> tuple[int | None, dict]:
    """`PIPELINE_CONFIG` run by Snakemake in `workdir` (made here) to the end, then its report.html, both
    within `timeout` seconds, output in workdir/snakemake.log. Returns the exit status (None: out of time)
    and the seconds taken {run_s, total_s, timeout_s}."""
    workdir.mkdir(parents=True)
    configfile = workdir / "pipeline.yaml"
    configfile.write_text(PIPELINE_CONFIG)
    log_path = workdir / "snakemake.log"
    start = time.monotonic()
    status = run_logged(snakemake_command(workdir, configfile, "--cores", "all"), log_path, timeout)
    run_s = time.monotonic() - start
    if status == 0:
        status = run_logged(snakemake_command(workdir, configfile, "--report", "report.html"), log_path,
                            timeout - run_s)
    return status, {"run_s": round(run_s, 1), "total_s": round(time.monotonic() - start, 1),
                    "timeout_s": round(timeout)}


