"""Shared fixtures: one real Snakemake run of the tiny config, used by every test module that needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config" / "tiny.yaml"
SNAKEFILE = REPO / "workflow" / "Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def snakemake(workdir: Path, *args, configfile: Path = TINY, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(configfile), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run to the end, then its report; returns the work directory.

    Session-scoped: tests/test_workflow.py and tests/test_report_browser.py share one run (about 3 minutes
    on 2 cores), so CI pays for it once. Tests must not modify the directory."""
    workdir = tmp_path_factory.mktemp("tiny")
    proc = snakemake(workdir, "--cores", "2")
    snakemake(workdir, "--report", str(workdir / "report.html"))
    (workdir / "run.log").write_text(proc.stdout + proc.stderr)
    return workdir


# Lines for the end of the pytest output (e.g. where test_report_browser.py put its screenshots).
SUMMARY_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY_NOTES:
        terminalreporter.write_line(line)
