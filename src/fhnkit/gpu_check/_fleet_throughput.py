"""The check `fleet_throughput`: fleets of each class at two sizes, and the thesis grid's device-hours.

`fhnkit bench train` on DDNN fleets of about 36 and 2,300 models (the default B_S grid and 64
replicates of it), PINN fleets of 8 and 256 (A_scarce's PINNs and 32 replicates), iterator networks
(study C) and the mixed B_S_techniques grid, on the device; each class's rate is that of its largest
fleet, and `config/thesis.yaml`'s training time is estimated from each class's own rate (its
model-iterations per class over that class's rate), not from one rate for all models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._context import Context, Outcome

THESIS_CONFIG = Path(__file__).resolve().parents[3] / "config" / "thesis.yaml"


@dataclass(frozen=True)
class Fleet:
    """One measured fleet: a study's models (of `classes`), over `replicas` times its seeds."""

    label: str
    study: str
    classes: tuple[str, ...] | None
    replicas: int
    solo: bool  # also time the models one at a time (small fleets only)
    graphs: bool = True  # iterations replayed from CUDA graphs (False: as they are, to measure what graphs buy)


def fleets_to_time(config: dict, quick: bool) -> list[Fleet]:
    """The fleets the check times with `config` (the default config's studies, else the check's own)."""
    studies = config["studies"]
    big = (lambda n: min(n, 2)) if quick else (lambda n: n)
    if "B_S" in studies:
        plan = [Fleet("ddnn", "B_S", None, 1, True), Fleet("ddnn", "B_S", None, big(64), False),
                Fleet("ddnn", "B_S", None, big(64), False, graphs=False),
                Fleet("pinn", "A_scarce", ("pinn",), 1, True), Fleet("pinn", "A_scarce", ("pinn",), big(32), False),
                Fleet("pinn", "A_scarce", ("pinn",), big(32), False, graphs=False),
                Fleet("itnn", "C", ("itnn",), big(8), False), Fleet("mixed", "B_S_techniques", None, 1, True)]
    else:
        plan = [Fleet("ddnn", "B_check", None, 1, True), Fleet("ddnn", "B_check", None, big(16), False),
                Fleet("pinn", "A_check", ("pinn",), 1, True), Fleet("pinn", "A_check", ("pinn",), big(16), False)]
    return [f for f in plan if f.study in studies]


def model_iterations_by_class(config: dict) -> dict[str, float]:
    """Model-iterations of a config's whole grid per class (ddnn, pinn, itnn; DDNNa and PINNa count as theirs)."""
    from ..plan import expand_all

    totals: dict[str, float] = {}
    for spec in expand_all(config):
        totals[spec["class"]] = totals.get(spec["class"], 0.0) + spec["training"]["iterations"]
    return totals


def device_hours(totals: dict[str, float], rates: dict[str, float]) -> tuple[float | None, dict[str, float]]:
    """Hours of training `totals` (model-iterations per class) at each class's own rate (model-iterations/s);
    None as the total where a class has no measured rate."""
    hours = {cls: n / rates[cls] / 3600 for cls, n in totals.items() if cls in rates}
    return (sum(hours.values()) if len(hours) == len(totals) else None), hours


def check_fleet_throughput(ctx: Context) -> Outcome:
    """Each fleet of `fleets_to_time` timed by `bench_train`; the thesis grid's device-hours per class."""
    import torch

    from ..plan.config import load_config
    from ..training.throughput import bench_train

    config = ctx.study_config or ctx.config
    # 100 iterations: the solo sides and the 2,304-model fleet in about 2 minutes of an H200 (issue 22's rates),
    # leaving the pipeline check its time within the whole check's 8 minutes
    iterations = 20 if ctx.quick else 100
    rows, rates = [], {}
    on_gpu = torch.device(ctx.device).type == "cuda"
    for fleet in fleets_to_time(config, ctx.quick):
        if not (fleet.graphs or on_gpu):  # without a GPU there are no graphs to leave out
            continue
        result = bench_train(config, fleet.study, iterations, ctx.device, replicas=fleet.replicas,
                             classes=list(fleet.classes) if fleet.classes else None, solo=fleet.solo,
                             graphs=fleet.graphs)
        main = result["records"][0]
        rows.append({"label": fleet.label, "study": fleet.study, "replicas": fleet.replicas, "ratio": result["ratio"],
                     "classes": result["classes"], "graphs": fleet.graphs, **{k: main[k] for k in (
                         "models", "groups", "model_iterations_per_s", "peak_memory_bytes",
                         "host_syncs_per_iteration", "execution")}})
        if fleet.label != "mixed" and fleet.graphs:  # a class's rate: that of its largest fleet
            best = rates.get(fleet.label)
            if best is None or main["models"] >= best[0]:
                rates[fleet.label] = (main["models"], main["model_iterations_per_s"])
    class_rates = {cls: rate for cls, (_, rate) in rates.items()}
    totals = model_iterations_by_class(load_config(THESIS_CONFIG)) if THESIS_CONFIG.is_file() else {}
    total_hours, hours = device_hours(totals, class_rates)
    parts = [f"{r['label']} {r['study']} x{r['replicas']}{'' if r['graphs'] else ' without graphs'}: "
             f"{r['models']} models in {r['groups']} groups, {r['model_iterations_per_s']:,.0f} model-iterations/s"
             + (f" ({r['ratio']:.1f}x alone)" if r["ratio"] is not None else "") for r in rows]
    repeat = _repeatability(config, ctx.device, iterations)
    parts.append(repeat["summary"])
    if not totals:
        estimate = f"no {THESIS_CONFIG} to estimate"
    elif total_hours is None:
        estimate = f"thesis grid: classes {sorted(set(totals) - set(class_rates))} not measured here"
    else:
        estimate = (f"thesis grid ({sum(totals.values()):.3g} model-iterations) in {total_hours:.1f} device-hours: "
                    + ", ".join(f"{cls} {h:.2f} h" for cls, h in sorted(hours.items())))
    return Outcome("fleet_throughput", "PASS", "; ".join(parts) + f" ({iterations} iterations); {estimate}",
                   {"fleets": rows, "repeatability": repeat, "class_rates": class_rates,
                    "thesis_model_iterations": totals, "thesis_hours_by_class": hours, "thesis_hours": total_hours})


def _repeatability(config: dict, device: str, iterations: int) -> dict:
    """The first fleet's study (DDNNs, by hand) and a PINN study trained twice with CUDA graphs and once
    without: whether the weights repeat bit for bit, and how far graphs move them."""
    from ..training.throughput import fleet_weights

    out, lines = {}, []
    for fleet in fleets_to_time(config, quick=True):
        if not fleet.solo or fleet.label == "mixed":
            continue
        kw = {"classes": list(fleet.classes) if fleet.classes else None}
        first, again = (fleet_weights(config, fleet.study, iterations, device, True, **kw) for _ in range(2))
        eager = fleet_weights(config, fleet.study, iterations, device, False, **kw)
        same = all(bool((a == b).all()) for a, b in zip(first, again, strict=True))
        gap = max(float((a - b).abs().max()) for a, b in zip(first, eager, strict=True))
        out[fleet.label] = {"study": fleet.study, "models": len(first), "repeats_bit_for_bit": same,
                            "max_abs_graphs_vs_eager": gap}
        lines.append(f"{fleet.label} {fleet.study}: {'same' if same else 'NOT the same'} weights run to run, "
                     f"graphs vs eager max |dw| {gap:.1e}")
    return {"by_class": out, "summary": "; ".join(lines)}
