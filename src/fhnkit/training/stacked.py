"""Many MLPs of one depth as one batched computation, for training them together (a fleet).

Model i's layer l is the top-left corner of a zero-padded weight tensor of shape
(models, widest output, widest input): one `baddbmm` evaluates every model's layer.
A padded unit adds nothing downstream and its weights get no gradient, so they stay 0:
its input weights and bias are 0, so its activation is act(0), which is 0 for every
activation but the sigmoid (whose padded units are masked to 0), and the next layer's
weights from it are 0. Padding never changes a model's outputs or gradients (only the
floating-point order of a matrix product's sums). Each model keeps its own activation
per layer, input/output scaling and weights.

Each layer keeps its models in its own order (`StackedMLP.rows`): sorted by the layer's (outputs, pass-through,
activation, inputs), so that the models of one shape (a `LayerClass`) are consecutive and a step that
computes each shape at its own size (`fhnkit.training.stacked_data`) takes their weights as one view; an
evaluation reorders its activations between layers (a permutation of the models, `StackedMLP.layer_inputs`).

All weights and biases live in one (rows, values per row) tensor, `flat`, and their gradients in another,
`flat_grad` (the parameters are views of them; `LAYOUT` names the order of a row's values, which checkpoints
record): an optimiser updates every model with a handful of operations (`fhnkit.training.stacked_group`), at
each row's model's own rate (`row_blocks`). A layer applies each activation to runs of
consecutive rows, one per width (no activation is computed twice).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..nets.mlp import ACTIVATIONS, MLP, activation_and_slope, time_tangent

# the order of the values in `flat` (checkpoints record it)
LAYOUT = ("rows per layer in the layer's own order (StackedMLP.rows); per hidden layer (1 + in, out): bias, then "
          "weight (in, out); output layer (out, 1 + in)")


def _linears(net: MLP) -> list[nn.Linear]:
    return [m for m in net.net if isinstance(m, nn.Linear)]


def stack_key(net: nn.Module) -> tuple | None:
    """What models must share to be stacked (exact type MLP or its iterator subclass, inputs and outputs;
    any depths and widths); None for a network that cannot be stacked (e.g. one MLP per time window)."""
    if not isinstance(net, MLP):
        return None
    linears = _linears(net)
    return (type(net).__name__, linears[0].in_features, linears[-1].out_features)


def stacked_layers(nets: list[MLP]) -> list[list[tuple[str, int]]]:
    """Per model, its hidden layers (activation, width) in the stack: its own, then, where it is shallower
    than the deepest, its last hidden layer passed through ("identity", that width) to the output layer."""
    depth = max(len(net.spec["layers"]) for net in nets)
    out = []
    for net in nets:
        layers = [tuple(layer) for layer in net.spec["layers"]]
        width = layers[-1][1] if layers else len(net.spec["inputs"])
        out.append(layers + [("identity", width)] * (depth - len(layers)))
    return out


def stack_order(nets: list[MLP]) -> list[int]:
    """Indices of `nets` sorted by their hidden layers' (width, activation) in the stack (`stacked_layers`),
    first layer first: the first layer's own order (`StackedMLP.rows`), and one in which the models of one
    shape in a layer are, as far as an order allows, in the order of the layer before (its input needs no
    reordering)."""
    keys = [[(width, act) for act, width in layers] for layers in stacked_layers(nets)]
    return sorted(range(len(nets)), key=lambda i: keys[i])


def _zero_preserving(name: str) -> bool:
    return bool(ACTIVATIONS[name]()(torch.zeros(1)).item() == 0.0)


@dataclass(frozen=True)
class LayerClass:
    """Consecutive rows of one layer (`StackedMLP.rows`) whose models have one shape there: `n_in` inputs,
    `n_out` outputs, whether the layer passes them through (an identity, never trained) and their activation
    (None in the output layer)."""

    rows: slice
    n_in: int
    n_out: int
    through: bool
    activation: str | None


def consecutive_runs(values: list) -> list[tuple[object, slice]]:
    """Maximal runs of equal consecutive `values`: (value, slice)."""
    out, start = [], 0
    for value, group in itertools.groupby(values):
        count = len(list(group))
        out.append((value, slice(start, start + count)))
        start += count
    return out


class StackedMLP(nn.Module):
    """`len(nets)` MLPs of equal inputs and outputs, evaluated together on (models, batch, n_in). A model
    shallower than the deepest passes its last hidden layer through identity layers (weights I, bias 0,
    never trained: `pass_through`) to its output layer, the stack's last: the same values and gradients
    exactly. Model i is `nets[i]` in inputs and outputs; inside, layer d's row r holds model `rows[d][r]`."""

    def __init__(self, nets: list[MLP]):
        super().__init__()
        keys = {stack_key(net) for net in nets}
        if len(keys) != 1 or None in keys:
            raise ValueError(f"cannot stack networks of different kinds, inputs or outputs: {keys}")
        hidden = stacked_layers(nets)
        n_models, depth = len(nets), len(hidden[0]) + 1
        n_in, n_out = len(nets[0].spec["inputs"]), len(nets[0].spec["outputs"])
        device = next(nets[0].parameters()).device
        # per model and layer of the stack: (outputs, inputs)
        dims = [[(units, ([n_in] + [w for _, w in layers])[d])
                 for d, units in enumerate([w for _, w in layers] + [n_out])] for layers in hidden]
        shapes = [tuple(max(model[d][k] for model in dims) for k in (0, 1)) for d in range(depth)]
        own = [set(self.positions(net, depth)) for net in nets]

        def key(i, d):  # a model's shape at layer d: what orders the layer's rows
            through = d not in own[i]
            act = hidden[i][d][0] if d < depth - 1 else None
            return (dims[i][d][0], through, act or "", dims[i][d][1])
        # per layer, its rows' models (each a stable sort of the layer before: the fewest moves between them)
        order, self.rows, self.layer_classes = list(range(n_models)), [], []
        for d in range(depth):
            order = sorted(order, key=lambda i, d=d: key(i, d))
            self.rows.append(list(order))
            self.layer_classes.append([LayerClass(rows, k[3], k[0], k[1], k[2] or None)
                                       for k, rows in consecutive_runs([key(i, d) for i in order])])
        self.row_of = [{model: r for r, model in enumerate(rows)} for rows in self.rows]  # per layer: model -> row

        def reordering(index: list[int]) -> torch.Tensor | None:  # None where it leaves every row in place
            return None if index == list(range(n_models)) else torch.tensor(index, device=device)
        self.row_models = [reordering(rows) for rows in self.rows]  # per layer, each row's model (None: row r is r)
        # per layer, its input's rows from the layer before's (from the models, for the first); None: the same
        self.layer_inputs = [reordering([self.row_of[d - 1][model] for model in self.rows[d]] if d else self.rows[d])
                             for d in range(depth)]
        # the output layer's rows, in model order
        self.output_order = reordering([self.row_of[-1][i] for i in range(n_models)])
        per_model = sum(n_out * n_in + n_out for n_out, n_in in shapes)
        self.flat = torch.zeros((n_models, per_model), device=device)
        self.flat_grad = torch.zeros_like(self.flat)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        # per layer, its bias and weight as one view of `flat` (and of `flat_grad`): a hidden layer's
        # (rows, 1 + in, out), [1, h] times which is its pre-activation h W^T + b, in one product; a weight
        # (rows, out, in) lies in memory as (rows, in, out), so that the product reads a plain matrix per
        # model (on a CPU about 1.5x faster than a transposed one). The output layer's (rows, out, 1 + in)
        # (each output's bias, then its weights): its few outputs are the rows of a product (A [1, h]^T), about
        # 2-3x faster on a CPU than a product with that few columns. The bias comes first so that a model
        # of fewer inputs than the widest reads a leading corner of its block.
        self.affine, self.affine_grad, self.columns = [], [], []
        start = 0
        for d, (n_out_d, n_in_d) in enumerate(shapes):
            size = (n_in_d + 1) * n_out_d
            output = d == depth - 1
            shape = (n_models, n_out_d, n_in_d + 1) if output else (n_models, n_in_d + 1, n_out_d)

            def block(of, at=start, size=size, shape=shape):
                return of[:, at:at + size].view(shape)
            if output:
                self.weights.append(self._param(lambda of, b=block: b(of)[..., 1:]))
                self.biases.append(self._param(lambda of, b=block: b(of)[..., 0]))
            else:
                self.weights.append(self._param(lambda of, b=block: b(of)[:, 1:].transpose(1, 2)))
                self.biases.append(self._param(lambda of, b=block: b(of)[:, 0]))
            self.affine.append(block(self.flat))
            self.affine_grad.append(block(self.flat_grad))
            self.columns.append(slice(start, start + size))
            start += size
        # `flat`'s columns in blocks of consecutive layers of one row order: (columns, each row's model or None),
        # what an optimiser needs to give each row its model's rate
        self.row_blocks: list[tuple[slice, torch.Tensor | None]] = []
        for d, columns in enumerate(self.columns):
            if self.row_blocks and self.rows[d] == self.rows[d - 1]:
                self.row_blocks[-1] = (slice(self.row_blocks[-1][0].start, columns.stop), self.row_blocks[-1][1])
            else:
                self.row_blocks.append((columns, self.row_models[d]))
        with torch.no_grad():
            for i, net in enumerate(nets):
                linears = dict(zip(self.positions(net, depth), _linears(net), strict=True))
                for d in range(depth):
                    r = self.row_of[d][i]
                    if d in linears:
                        lin = linears[d]
                        self.weights[d][r, : lin.out_features, : lin.in_features] = lin.weight.detach()
                        self.biases[d][r, : lin.out_features] = lin.bias.detach()
                    else:
                        width = dims[i][d][0]
                        self.weights[d][r, :width, :width] = torch.eye(width, device=device)
        # per layer, the runs of consecutive rows for which it is a pass-through layer (never trained)
        self.pass_through = [[c.rows for c in classes if c.through] for classes in self.layer_classes]
        # per hidden layer, per row: its model's width
        self.widths = [[dims[i][d][0] for i in self.rows[d]] for d in range(depth - 1)]
        # per hidden layer: the runs of consecutive rows sharing an activation, and, where an
        # activation does not map 0 to 0, which units exist (1) or pad (0)
        self.activation_runs, self.activation_names, self.unit_masks = [], [], []
        for d in range(depth - 1):
            names = [hidden[i][d][0] for i in self.rows[d]]
            runs = [(name, len(list(group))) for name, group in itertools.groupby(names)]
            self.activation_names.append(runs)
            self.activation_runs.append([(ACTIVATIONS[name](), count) for name, count in runs])
            mask = None
            if not all(_zero_preserving(name) for name, _ in runs):
                mask = torch.zeros((n_models, 1, shapes[d][0]), device=device)
                for r, width in enumerate(self.widths[d]):
                    mask[r, 0, :width] = 1.0
            self.unit_masks.append(mask)
        for name in ("input_offset", "input_scale", "output_offset", "output_scale"):
            self.register_buffer(name, torch.stack([getattr(net, name) for net in nets]).unsqueeze(1))

    @staticmethod
    def positions(net: MLP, depth: int) -> list[int]:
        """The stack's layers (of `depth`) that hold `net`'s linear layers: its hidden ones first, its output last."""
        hidden = len(net.spec["layers"])
        return list(range(hidden)) + [depth - 1]

    def _param(self, view) -> nn.Parameter:
        """A parameter of every model, `view(flat)` (its gradient `view(flat_grad)`)."""
        param = nn.Parameter(view(self.flat))
        param.grad = view(self.flat_grad)
        return param

    @property
    def n_models(self) -> int:
        return self.flat.shape[0]

    def _layer_input(self, d: int, h: torch.Tensor) -> torch.Tensor:
        """Layer d's input, from the layer before's output (of the models, for the first) in layer d's rows."""
        index = self.layer_inputs[d]
        return h if index is None else h.index_select(0, index)

    def _in_model_order(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.output_order is None else y.index_select(0, self.output_order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (models, batch, n_inputs) in model units -> (models, batch, n_outputs) in model units."""
        z = (x - self.input_offset) / self.input_scale
        for depth_i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(bias.unsqueeze(1), self._layer_input(depth_i, z), weight.transpose(1, 2))
            if depth_i < len(self.activation_runs):
                z = self._activate(depth_i, z)
        return self._in_model_order(z) * self.output_scale + self.output_offset

    def with_time_derivative(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, d outputs / d t) at x (models, batch, n_inputs), t being input column 0, by forward
        mode as `MLP.with_time_derivative` (each model's own activations; padded units stay 0)."""
        def affine(depth_i):
            weight, bias = self.weights[depth_i], self.biases[depth_i]

            def apply(h, with_bias):
                h = self._layer_input(depth_i, h)
                return (torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2)) if with_bias
                        else torch.bmm(h, weight.transpose(1, 2)))
            return apply

        def activate(depth_i):
            runs, mask = self.activation_names[depth_i], self.unit_masks[depth_i]

            def both(z):
                parts = [activation_and_slope(name, part)
                         for (name, _), part in zip(runs, torch.split(z, [n for _, n in runs]), strict=True)]
                h, slope = (torch.cat(p) if len(p) > 1 else p[0] for p in zip(*parts, strict=True))
                return (h, slope) if mask is None else (h * mask, slope * mask)
            return both

        depth = len(self.weights)
        layers = [(affine(d), activate(d) if d < depth - 1 else None) for d in range(depth)]
        y, dy = time_tangent(x - self.input_offset, self.input_scale, layers, 1.0)
        return (self._in_model_order(y) * self.output_scale + self.output_offset,
                self._in_model_order(dy) * self.output_scale)

    def _activate(self, depth_i: int, z: torch.Tensor) -> torch.Tensor:
        runs, mask = self.activation_runs[depth_i], self.unit_masks[depth_i]
        if len(runs) == 1:
            out = runs[0][0](z)
        else:
            parts = torch.split(z, [count for _, count in runs])
            out = torch.cat([act(part) for (act, _), part in zip(runs, parts, strict=True)])
        return out if mask is None else out * mask

    def zero_pass_through(self, grads: list[torch.Tensor]) -> None:
        """Zero the pass-through layers' entries of per-layer gradients (each (rows, ...)), so that no
        optimiser step changes them (Adam's step is 0 where every gradient so far was)."""
        for grad, runs in zip(grads, self.pass_through, strict=True):
            for run in runs:
                grad[run].zero_()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every model's gradients (they stay views of `flat_grad`, whatever `set_to_none` says)."""
        self.flat_grad.zero_()

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` into `flat_grad`."""
        with warnings.catch_warnings():
            # the gradients are strided views of flat_grad, on purpose (one optimiser step for all)
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
            loss.backward()

    def model_rows(self, i: int) -> list[int]:
        """Model i's row in each layer."""
        return [row_of[i] for row_of in self.row_of]

    @torch.no_grad()
    def copy_into(self, i: int, net: MLP) -> None:
        """Write model i's weights into `net` (the network it was stacked from)."""
        for lin, d in zip(_linears(net), self.positions(net, len(self.weights)), strict=True):
            r = self.row_of[d][i]
            lin.weight.copy_(self.weights[d][r, : lin.out_features, : lin.in_features])
            lin.bias.copy_(self.biases[d][r, : lin.out_features])
