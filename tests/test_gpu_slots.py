"""Every rule that asks Snakemake for a GPU slot (`resources: gpu=`) takes one when it runs.

Snakemake run locally counts `--resources gpu=N` but does not say which GPU a job may use: a job
that does not take a slot itself (`fhnkit.cluster.acquire_gpu`, before CUDA is initialised) lands
on GPU 0 beside every other. This reads the rules and the scripts they run.
"""

from __future__ import annotations

import re
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


def _rules() -> dict[str, str]:
    """{rule name: its text} of every rule in workflow/rules."""
    rules = {}
    for smk in sorted((WORKFLOW / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            rules[re.match(r"rule (\w+):", block).group(1)] = block
    return rules


def test_every_rule_with_a_gpu_resource_takes_a_gpu_slot():
    gpu_rules = {name: text for name, text in _rules().items() if re.search(r"^\s+gpu=", text, flags=re.M)}
    assert {"train", "compile", "cost_sweep", "benchmark"} <= set(gpu_rules)
    for name, text in gpu_rules.items():
        script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+\.py)"', text)
        assert script, f"rule {name} asks for a GPU and runs no script that could take one"
        source = (WORKFLOW / "scripts" / script.group(1)).read_text()
        assert "acquire_gpu(" in source, f"{script.group(1)} (rule {name}) asks for a GPU slot and does not take one"
        # the slot must be taken before anything imports the stage's GPU code
        before = source[: source.index("acquire_gpu(")]
        assert not re.search(r"^from fhnkit\.(inference|training|solvers)", before, flags=re.M), script.group(1)
