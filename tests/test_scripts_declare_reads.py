"""Every job declares what it reads (issue 23): a workflow script reads only its rule's input, output,
params, wildcards, log, threads and resources, never the config wholesale (`snakemake.config`), a config
file, or a path written in the script, so that what a job's output depends on is what Snakemake's
triggers see."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
DECLARED = {"input", "output", "params", "wildcards", "log", "threads", "resources"}
CONFIG_READERS = {"load_config", "read_config_file", "validate_config"}


def undeclared_reads(source: str) -> list[str]:
    """What a script's source reads beyond its rule's declarations (line: what), by its syntax tree."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "snakemake" \
                and node.attr not in DECLARED:
            found.append(f"{node.lineno}: snakemake.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in CONFIG_READERS:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in CONFIG_READERS:
            found.append(f"import of {node.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value.startswith(("config/", "results/")) or node.value.endswith((".yaml", ".parquet"))):
            found.append(f"{node.lineno}: the path {node.value!r}")
    return found


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_a_script_reads_only_what_its_rule_declares(script):
    assert undeclared_reads((SCRIPTS / script).read_text()) == []


def test_the_check_finds_what_a_script_reads_behind_its_rules_back():
    source = ("from fhnkit.plan.config import load_config\n"
              "dt = snakemake.config['data_solver']['dt']\n"
              "other = open('results/B_S/data/train.parquet')\n")
    assert sorted(undeclared_reads(source)) == ["2: snakemake.config", "3: the path 'results/B_S/data/train.parquet'",
                                                "import of load_config"]
