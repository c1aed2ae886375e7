"""The runs of one fleet group trained as one stacked network, with everything on the device.

Per iteration there is one forward, one backward and one Adam update for the whole group (over
the stacked net's one weight tensor), and no host synchronisation: every model's losses,
learning rate, ReduceLROnPlateau state and whether it is still training stay on the device.
Each iteration's batches are drawn on the device by counter-based draws (`fhnkit.training.draws`:
the batches each run draws alone, for every model at once, from the iteration number on the device).
On a GPU, after a few iterations run as they are, one iteration is captured as a CUDA graph and
replayed: an iteration is then one launch instead of hundreds (`graphs`; on failure to capture,
the group goes on without, and says why in `execution`). The host reads the block's losses back
only between blocks (`collect`), when the models are validated, and finds there where a model
diverged. A model whose loss becomes NaN or infinite is frozen in that very iteration, before
its update, as a run alone stops: its weights stay the last finite ones.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .draws import DRAWS
from .stacked import LAYOUT, StackedMLP, stack_order
from .stacked_data import AutogradTermsStep, DataTermsStep, row_weights
from .terms import entry
from .train import TrainingDiverged, TrainingRun

log = logging.getLogger(__name__)

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the solo run uses
WARMUP_ITERATIONS = 3  # run as they are before a CUDA graph is captured (PyTorch's advice: on a side stream)


def _parts(batch) -> tuple:
    return batch if isinstance(batch, tuple) else (batch,)


def union_of_terms(runs: list[TrainingRun]) -> tuple[list, list[list], list[list[int]]]:
    """(every term name's first term, in order of first appearance; per run its term of each name or None;
    per run the stream seed of each, as the run draws it alone, 0 for a term it does not have)."""
    first: dict[str, object] = {}
    for run in runs:
        for term in run.terms:
            first.setdefault(term.name, term)
    own, seeds = [], []
    for run in runs:
        by_name = {t.name: (t, seed) for t, seed in zip(run.terms, run.seeds, strict=True)}
        own.append([by_name.get(name, (None, 0))[0] for name in first])
        seeds.append([by_name.get(name, (None, 0))[1] for name in first])
    return list(first.values()), own, seeds


class StackedGroup:
    """Runs with one network shape and schedule (`fleet.group_key`), trained as one: the union of their loss
    terms, each model's own weighted as alone and the others 0 (`union_of_terms`), batches of smaller size
    padded to the group's largest with the padding weighted 0 (`stacked_data.row_weights`); with `graphs`
    (default), on a CUDA device, each iteration replayed from a CUDA graph."""

    def __init__(self, runs: list[TrainingRun], graphs: bool = True):
        self.runs = runs = [runs[i] for i in stack_order([run.model for run in runs])]
        self.net = StackedMLP([run.model for run in runs])
        device = self.device = self.net.weights[0].device
        # every loss term of the group's models (by name, in order of first appearance), one of them computing
        # for all; per model its own term (its data, box, batch size, weight, stream), or, where it has no
        # such term, a stand-in drawn and evaluated but weighted 0 (`present`)
        self.terms, own, seeds = union_of_terms(runs)
        self.present = torch.tensor([[t is not None for t in per_model] for per_model in own], device=device).T
        stand_in = [[t if t is not None else proto for t, proto in zip(per_model, self.terms, strict=True)]
                    for per_model in own]
        # data terms only: gradients by hand, without autograd (`stacked_data`); any other loss: autograd
        step = DataTermsStep if DataTermsStep.applies(self.net, self.terms) else AutogradTermsStep
        self.step = step(self.net, self.terms, row_weights(stand_in, device))
        self.samplers = [type(term).batch_sampler([terms[i] for terms in stand_in], [ss[i] for ss in seeds])
                         for i, term in enumerate(self.terms)]
        n = len(runs)
        f64 = {"dtype": torch.float64, "device": device}
        self.weights = torch.tensor([[0.0 if t is None else t.weight for t in per_model] for per_model in own],
                                    device=device).T
        self.lr = torch.tensor([run.optimizer.param_groups[0]["lr"] for run in runs], **f64)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        plateau = [run.spec.training.plateau for run in runs]
        self.plateau = {key: torch.tensor([p[key] for p in plateau], **f64)
                        for key in ("factor", "patience", "min_lr", "eps")}
        self.plateau["keep"] = 1.0 - torch.tensor([p["threshold"] for p in plateau], **f64)
        self.best = torch.full((n,), math.inf, **f64)
        self.bad = torch.zeros(n, **f64)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.net.flat), torch.zeros_like(self.net.flat)
        self._step = torch.zeros_like(self.net.flat)  # one Adam step at rate 1 (scratch)
        self.iteration = runs[0].iteration
        self.adam_steps = 0  # every active model has taken this many Adam steps (they start together)
        # the same count on the device, for the fused kernel: incremented there, never copied from the host
        # inside a block (float32 as torch's own Adam keeps it)
        self._adam_step = torch.zeros((), device=self.device)
        self.diverged_at = [-1] * n  # per run: the iteration whose loss was not finite, or -1
        self.blocks: list[tuple[int, torch.Tensor]] = []  # (first iteration, its loss values) since `collect`
        # what an iteration reads and writes in place (a CUDA graph replays on the same memory): the block's
        # loss values (iterations, terms + total, models), the iteration's index in the block, and the
        # iteration number its batches are drawn for
        self._values: torch.Tensor | None = None
        self._counter = torch.zeros(1, dtype=torch.long, device=device)
        self._draw = torch.full((), self.iteration, dtype=torch.long, device=device)
        self.graphs = graphs and device.type == "cuda"
        self._graph = None
        self._eager_iterations = 0
        self.execution = "cuda graph" if self.graphs else "eager"
        self._present = self.present.tolist()  # (terms, models), for `collect`
        self._absent = not self.present.all().item()  # whether a model lacks one of the group's terms
        self._draws_per_block: int | None = None  # iterations drawn at once, eager (`_iterate_eagerly`)
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None  # `validation_errors`' inputs and targets

    def _start_block(self, n_iterations: int) -> None:
        """Make room for a block's loss values (the buffer grows, and a captured graph is dropped, only when
        a block is longer than any before) and set the block's counter to its first iteration."""
        if self._values is None or self._values.shape[0] < n_iterations:
            self._values = torch.empty((n_iterations, len(self.terms) + 1, len(self.runs)), device=self.device)
            self._graph = None
        self._counter.zero_()

    def _iterate(self, batches: list | None = None) -> None:
        """One training iteration of every model, wholly on the device: losses (on `batches`, by default
        drawn here), freezing of a model whose loss is not finite, gradients, Adam, ReduceLROnPlateau;
        its loss values into the block's row."""
        if batches is None:
            batches = [draw(self._draw) for draw in self.samplers]
        losses = self.step.forward(batches)
        if self._absent:
            losses = torch.where(self.present, losses, 0.0)
        total = (self.weights * losses).sum(dim=0)
        row = torch.cat([losses.detach(), total.detach()[None]])
        self._values.index_copy_(0, self._counter, row[None])
        self.active &= torch.isfinite(row).all(dim=0)  # a model is frozen before a non-finite update
        self.step.backward(self.weights * self.active)
        self._adam()
        self._plateau(row[-1].double())
        self._counter.add_(1)
        self._draw.add_(1)

    def _iterate_on_device(self) -> None:
        """`_iterate`, replayed from a CUDA graph once one is captured (after WARMUP_ITERATIONS as they are,
        on a side stream); without `graphs`, or where capture failed, as it is."""
        if self._graph is not None:
            self._graph.replay()
            return
        if not self.graphs:
            self._iterate()
            return
        if self._eager_iterations < WARMUP_ITERATIONS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._iterate()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._eager_iterations += 1
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._iterate()
        except Exception as exc:  # a kernel that cannot be captured: go on as before, and say so
            log.warning("fleet group of %d models: no CUDA graph (%s); iterations run as they are",
                        len(self.runs), exc)
            self.graphs, self.execution = False, f"eager (CUDA graph capture failed: {exc})"
            self._iterate()
            return
        self._graph = graph
        graph.replay()

    def _iterate_eagerly(self, n_iterations: int) -> None:
        """`n_iterations` of `_iterate` as they are, their batches drawn for several iterations at once (the
        same batches: a draw is a function of its iteration number): a few dozen small operations per
        iteration fewer, which on a CPU is a large part of an iteration."""
        if self._draws_per_block is None:  # at most about 2^22 values (16 MB) of batches at once
            per_iteration = sum(part.numel() for draw in self.samplers for part in _parts(draw(self._draw)))
            self._draws_per_block = max(1, min(64, (1 << 22) // max(per_iteration, 1)))
        done = 0
        while done < n_iterations:
            count = min(self._draws_per_block, n_iterations - done)
            numbers = self._draw + torch.arange(count, device=self.device)[:, None]
            block = [draw(numbers) for draw in self.samplers]
            for i in range(count):
                self._iterate([entry(batch, i) for batch in block])
            done += count

    def advance(self, n_iterations: int) -> None:
        """Train every run of the group `n_iterations` further (a frozen run stays as it is). Each
        iteration's loss values are kept on the device, (iterations, terms + total, models), for `collect`."""
        self._start_block(n_iterations)
        if self.graphs:
            for _ in range(n_iterations):
                self._iterate_on_device()
        else:
            self._iterate_eagerly(n_iterations)
        self.blocks.append((self.iteration, self._values[:n_iterations].clone()))
        self.adam_steps += n_iterations
        self.iteration += n_iterations

    @torch.no_grad()
    def _adam(self) -> None:
        """torch.optim.Adam's update of every model at once (the rows of the stacked net's `flat`), each
        with its own rate; a frozen model's rows stay as they are. torch's fused Adam kernel (one pass over
        weights, gradients and moments; a frozen model's gradients are 0: `step.backward`) computes every
        model's step at rate 1 into `_step`, which is then added at each row's model's rate (the same update
        up to the rounding of one product), block by block of layers of one row order
        (`StackedMLP.row_blocks`)."""
        self._adam_step.add_(1.0)
        rate = torch.where(self.active, self.lr, 0.0).float()
        self._step.zero_()
        torch._fused_adam_([self._step], [self.net.flat_grad], [self.exp_avg], [self.exp_avg_sq], [],
                           [self._adam_step], lr=1.0, beta1=BETA1,
                           beta2=BETA2, weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False)
        for columns, rows in self.net.row_blocks:
            row_rate = rate if rows is None else rate.index_select(0, rows)
            self.net.flat[:, columns].addcmul_(self._step[:, columns], row_rate[:, None])

    def _plateau(self, loss: torch.Tensor) -> None:
        """ReduceLROnPlateau (mode min, relative threshold, no cooldown) of every model; a frozen
        model's rate stays (its other state no longer matters)."""
        p = self.plateau
        better = loss < self.best * p["keep"]
        torch.where(better, loss, self.best, out=self.best)  # in place, as all state (a CUDA graph replays)
        self.bad.add_(1).masked_fill_(better, 0.0)
        reduce = self.active & (self.bad > p["patience"])
        new_lr = torch.maximum(self.lr * p["factor"], p["min_lr"])
        reduce_lr = reduce & (self.lr - new_lr > p["eps"])
        torch.where(reduce_lr, new_lr, self.lr, out=self.lr)
        self.bad.masked_fill_(reduce, 0.0)

    def validation_errors(self) -> list[tuple[float, float]]:
        """Per run, mean and max over its validation set of eq. 3.3 (`TrainingRun.validate`), after `collect`:
        on a GPU every model in one stacked evaluation (`stacked_validation_errors`); on a CPU, or where the
        validation sets differ in shape, model by model (a CPU core runs each model's products at a
        validation set's size near its peak, where the stacked evaluation computes every padded unit too:
        on B_S's grid 2x slower)."""
        if self.device.type == "cpu" or len({tuple(run.val_x.shape) for run in self.runs}) > 1:
            return [run.validate() for run in self.runs]
        return self.stacked_validation_errors()

    @torch.no_grad()
    def stacked_validation_errors(self, max_values: int = 1 << 26) -> list[tuple[float, float]]:
        """`validation_errors` of every model in one stacked evaluation (in chunks of rows of at most
        `max_values` values per layer) and one read back; the runs' validation sets must have one shape."""
        if self._val is None:  # the validation sets on the device, once: (models, rows, columns)
            self._val = tuple(torch.stack([getattr(run, name) for run in self.runs]).to(self.device)
                              for name in ("val_x", "val_y"))
        x, y = self._val
        widest = max(weight.shape[1] for weight in self.net.weights)
        chunk = max(1, max_values // (x.shape[0] * widest))
        errors = torch.cat([(self.net(x[:, i:i + chunk]) - y[:, i:i + chunk]).abs().sum(dim=-1)
                            for i in range(0, x.shape[1], chunk)], dim=1)
        stats = torch.stack([errors.double().mean(dim=1), errors.max(dim=1).values.double()], dim=1).cpu()
        return [tuple(map(float, row)) for row in stats.tolist()]

    def collect(self) -> list[dict | TrainingDiverged | None]:
        """Read the blocks back (one synchronisation): each run's network, learning rate and iteration
        updated; per run the mean of its loss values since the last `collect`, a TrainingDiverged for a
        run that diverged in that time, or None for one frozen before."""
        names = [f"loss_{t.name}" for t in self.terms] + ["loss_total"]
        first = self.blocks[0][0] if self.blocks else self.iteration
        values = (torch.cat([v for _, v in self.blocks]).double().cpu().numpy() if self.blocks
                  else np.zeros((0, len(names), len(self.runs))))
        self.blocks = []
        lrs = self.lr.tolist()
        results = []
        for j, run in enumerate(self.runs):
            self.net.copy_into(j, run.model)
            run.optimizer.param_groups[0]["lr"] = lrs[j]
            own = [i for i in range(len(names)) if i == len(names) - 1 or self._present[i][j]]
            mine, mine_names = values[:, own, j], [names[i] for i in own]
            if self.diverged_at[j] < 0 and not np.isfinite(mine).all():
                k = int(np.flatnonzero(~np.isfinite(mine).all(axis=1))[0])
                self.diverged_at[j] = first + k + 1
                run.iteration = self.diverged_at[j]
                results.append(self._divergence(run, run.iteration, dict(zip(mine_names, mine[k], strict=True))))
            elif self.diverged_at[j] >= 0:
                results.append(None)
            else:
                run.iteration = self.iteration
                results.append(dict(zip(mine_names, mine.mean(axis=0), strict=True)) if len(mine) else None)
        return results

    @staticmethod
    def _divergence(run: TrainingRun, iteration: int, values: dict) -> TrainingDiverged:
        bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
        advice = "lower training.lr" + (" or training.weights.physics" if run.spec.kind.physics else "")
        return TrainingDiverged(f"model {run.spec.name} diverged at iteration "
                                f"{iteration}: {bad}; {advice}")

    # every tensor of the group's training state, by attribute name (and the net's weights, "flat")
    _STATE = ("lr", "active", "best", "bad", "exp_avg", "exp_avg_sq")

    def state_dict(self) -> dict:
        """Everything that determines the rest of the group's training, at a block boundary: the stacked
        weights and Adam moments, every model's rate, steps, plateau and divergence state, iteration (which
        also says where the batch draws go on) and which models (by name and config hash) it holds."""
        if self.blocks:
            raise RuntimeError("collect() the group's losses before saving its state")
        tensors = {name: getattr(self, name).clone() for name in self._STATE}
        return {"models": [(run.spec.model, run.spec.config_hash) for run in self.runs],
                "draws": DRAWS, "layout": LAYOUT, "iteration": self.iteration, "adam_steps": self.adam_steps,
                "diverged_at": list(self.diverged_at),
                "tensors": {"flat": self.net.flat.clone(), **tensors},
                "run_iterations": [run.iteration for run in self.runs]}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` of a group of the same models; the runs' networks follow."""
        models = [(run.spec.model, run.spec.config_hash) for run in self.runs]
        if state["models"] != models:
            raise ValueError("the checkpoint holds other models (or the same with another config)")
        if state.get("draws") != DRAWS:
            raise ValueError("the checkpoint was written by an older fhnkit (other batch draws)")
        if state.get("layout") != LAYOUT:
            raise ValueError("the checkpoint was written by an older fhnkit (weights in another order)")
        with torch.no_grad():
            self.net.flat.copy_(state["tensors"]["flat"])
        for name in self._STATE:
            getattr(self, name).copy_(state["tensors"][name])
        self.iteration, self.adam_steps = state["iteration"], state["adam_steps"]
        self._adam_step.fill_(float(self.adam_steps))
        self.diverged_at = list(state["diverged_at"])
        lrs = self.lr.tolist()
        self._draw.fill_(self.iteration)
        for j, (run, it) in enumerate(zip(self.runs, state["run_iterations"], strict=True)):
            run.iteration = it
            run.optimizer.param_groups[0]["lr"] = lrs[j]
            self.net.copy_into(j, run.model)
