"""A stacked group's losses and gradients, one step of its training: by hand for data terms, else autograd.

`DataTermsStep` and `AutogradTermsStep` do the same two things (`forward`: each term's loss per model;
`backward`: the gradients of the losses weighted per term and model, into the stacked net's `flat_grad`);
the group uses the first where it applies.

The data terms of a stacked group, differentiated by hand: no autograd graph, no allocation per iteration.

A group whose loss has data terms only (DDNN, DDNN with a region or high-error data term, ITNN) needs
no second derivative, and its backward is a fixed sequence of batched products: for layer l with
input h and pre-activation z = h W^T + b,

    dL/dW = g^T h,   dL/db = sum over the batch of g,   dL/dh = g W,   g_prev = dL/dh * act'(z_prev)

with g = dL/dz. `DataTermsStep` runs the forward with each activation's derivative saved, and the
backward with these products, into buffers allocated once per term (so that, on a CPU, no
iteration page-faults and no autograd node is built), writing the gradients straight into the stacked
network's `flat_grad`. The products are the ones autograd would compute; the sums of a batch may be
taken in another order, which changes the last bits only (tests/test_fleet.py bounds the difference
from a model trained alone).
"""

from __future__ import annotations

import functools
import itertools

import torch

from .stacked import StackedMLP
from .terms import DataTerm

_ONES: dict = {}  # 1 as a 0-dimensional tensor per (dtype, device): `lerp_` and `addcmul` take no plain number


def _one(like: torch.Tensor) -> torch.Tensor:
    key = (like.dtype, like.device)
    if key not in _ONES:
        _ONES[key] = torch.ones((), dtype=like.dtype, device=like.device)
    return _ONES[key]


def _silu(z, h, d):
    torch.sigmoid(z, out=d)
    torch.mul(z, d, out=h)
    d.lerp_(_one(d), h)  # σ + h (1 - σ), with h = z σ


def _tanh(z, h, d):
    if z.is_cuda:
        torch.tanh(z, out=h)
    else:  # tanh z = 2 sigmoid(2 z) - 1 (exactly 0 at 0; within 2e-7): torch's CPU tanh is 3x its sigmoid's time
        torch.mul(z, 2.0, out=d)
        torch.sigmoid(d, out=h)
        h.mul_(2.0).sub_(1.0)
    torch.addcmul(_one(d), h, h, value=-1, out=d)


def _sigmoid(z, h, d):
    torch.sigmoid(z, out=h)
    torch.mul(h, h, out=d)
    d.neg_().add_(h)  # h (1 - h)


def _relu(z, h, d):
    torch.clamp(z, min=0, out=h)
    d.copy_(z > 0)


def _elu(z, h, d):  # alpha = 1, as torch.nn.ELU's default
    positive = z > 0
    torch.where(positive, z, torch.expm1(z), out=h)
    torch.add(h, 1, out=d).masked_fill_(positive, 1.0)


def _sin(z, h, d):
    torch.sin(z, out=h)
    torch.cos(z, out=d)


def _identity(z, h, d):
    h.copy_(z)
    d.fill_(1.0)


def _pass_through(z, h, d):  # `_identity` whose slope d was filled with 1 once (`DataTermsStep._runs`)
    h.copy_(z)


# per activation's name (fhnkit.nets.mlp.ACTIVATIONS): fill h = act(z) and d = act'(z)
ACTIVATION_AND_SLOPE = {"silu": _silu, "tanh": _tanh, "sigmoid": _sigmoid, "relu": _relu, "elu": _elu, "sin": _sin,
                        "identity": _identity}


class _Buffers:
    """Every tensor one term's forward and backward write, for a batch of `batch` rows. A layer's input
    (the scaled inputs `x`, the activations `h`) has a last column of ones, for the bias (`StackedMLP.affine`)."""

    def __init__(self, net: StackedMLP, batch: int):
        n, like = net.n_models, net.flat
        widths = [w.shape[1] for w in net.weights]

        def with_ones(width):  # zeros (a unit a model lacks stays 0), and the last column ones
            out = torch.zeros((n, batch, width + 1), dtype=like.dtype, device=like.device)
            out[..., -1] = 1.0
            return out
        self.x = with_ones(net.weights[0].shape[2])
        # pre-activations (models, batch, units); the output layer's transposed, (models, outputs, batch), as
        # the product that gives them (`StackedMLP.affine`), and so are its error and gradient
        self.z = [torch.zeros((n, batch, w), dtype=like.dtype, device=like.device) for w in widths[:-1]]
        self.z.append(torch.empty((n, widths[-1], batch), dtype=like.dtype, device=like.device))
        self.h = [with_ones(w) for w in widths[:-1]]  # activations
        self.slope = [torch.zeros_like(z) for z in self.z[:-1]]  # act'(z)
        self.g = [torch.empty_like(z) for z in self.z]  # dL/dz
        self.dh = [torch.zeros_like(z) for z in self.z[:-1]]  # dL/dh
        self.err = torch.empty_like(self.z[-1])
        self.loss = torch.empty((n, batch), dtype=like.dtype, device=like.device)


def row_weights(terms_per_model: list[list], device) -> list[torch.Tensor | None]:
    """Per term of a group (`terms_per_model`: each model's terms), None where every model draws batches of
    one size, else the (models, largest batch) weights of each model's rows: 1 / its batch size on its
    own rows, 0 on the padding (a model's loss stays the mean over its own batch)."""
    weights = []
    for same_terms in zip(*terms_per_model, strict=True):
        sizes = [t.rows for t in same_terms]
        if len(set(sizes)) == 1:
            weights.append(None)
            continue
        position = torch.arange(max(sizes), device=device)[None, :]
        size = torch.tensor(sizes, device=device)[:, None]
        weights.append((position < size).float() / size)
    return weights


class AutogradTermsStep:
    """Losses (forward) and gradients (backward) of any loss terms, by autograd (a PINN's second derivatives)."""

    def __init__(self, net: StackedMLP, terms: list, rows: list[torch.Tensor | None] | None = None):
        self.net, self.terms, self.rows = net, terms, rows or [None] * len(terms)
        self.losses = None

    def forward(self, batches: list) -> torch.Tensor:
        """Each term's loss per model, (terms, models), with its graph kept for `backward`."""
        self.losses = torch.stack([t.value(self.net, b, r) for t, b, r in zip(self.terms, batches, self.rows,
                                                                              strict=True)])
        return self.losses

    def backward(self, coefficients: torch.Tensor) -> None:
        """The gradients of sum over terms and models of coefficients x loss, into the net's `flat_grad`."""
        self.net.zero_grad()
        self.net.backward((coefficients * self.losses).sum())
        self.net.zero_pass_through(self.net.affine_grad)
        self.losses = None


class DataTermsStep:
    """Losses (forward) and gradients (backward) of a stacked group's data terms, by hand."""

    def __init__(self, net: StackedMLP, terms: list, rows: list[torch.Tensor | None] | None = None):
        if not self.applies(net, terms):
            raise ValueError("DataTermsStep takes data terms only, with activations it knows")
        self.net, self.terms, self.rows = net, terms, rows or [None] * len(terms)
        self.padding = [None if r is None else (r == 0)[:, None, :] for r in self.rows]  # (models, 1, batch)
        self.buffers = [_Buffers(net, t.batch_size if r is None else r.shape[1])
                        for t, r in zip(terms, self.rows, strict=True)]
        self.runs = [self._runs(buf) for buf in self.buffers]
        self.inputs = [buf.x[..., :-1] for buf in self.buffers]
        # each layer's gradient of its weight and bias (`StackedMLP.affine`), summed over the terms here and
        # then copied into `flat_grad` (a product written straight into its strided views is several times
        # slower on a CPU); a pass-through layer's stays 0
        self.affine_grads = [torch.zeros_like(a, memory_format=torch.contiguous_format) for a in net.affine]
        self.hidden = [self._hidden_layers(buf) for buf in self.buffers]

    @staticmethod
    def applies(net: StackedMLP, terms: list) -> bool:
        """Whether every term is a data term and every activation has a derivative here."""
        return all(type(t) is DataTerm for t in terms) and all(
            name in ACTIVATION_AND_SLOPE for runs in net.activation_names for name, _ in runs)

    def _segments(self, depth: int) -> list[tuple[slice, bool]]:
        """The models of layer `depth` in consecutive segments: (models, whether it passes them through)."""
        through = self.net.pass_through[depth]
        cuts = sorted({0, self.net.n_models} | {s.start for s in through} | {s.stop for s in through})
        starts = {s.start for s in through}
        return [(slice(a, b), a in starts) for a, b in itertools.pairwise(cuts)]

    def _hidden_layers(self, buf: _Buffers) -> list[tuple[list, list, list, list]]:
        """Per hidden layer, the operations of its forward, its weight gradient (the first term's; a further
        term's, added) and its input gradient, on views of `buf` and the net made once. A segment of models
        the layer passes through (`StackedMLP.pass_through`) is copied: its identity's product I h is h
        exactly, its input gradient g, and it has no weight gradient."""
        net, layers = self.net, []
        for d in range(len(net.weights) - 1):
            h, z, g, grad = buf.h[d - 1] if d else buf.x, buf.z[d], buf.g[d], self.affine_grads[d]
            weight = net.weights[d].detach()
            forward, first, more, back = [], [], [], []
            for seg, through in self._segments(d):
                if through:  # (never the first layer: every model has one hidden layer of its own)
                    units = min(z.shape[2], h.shape[2] - 1)
                    forward.append(functools.partial(z[seg, :, :units].copy_, h[seg, :, :units]))
                    back.append(functools.partial(buf.dh[d - 1][seg, :, :units].copy_, g[seg, :, :units]))
                    continue
                forward.append(functools.partial(torch.bmm, h[seg], net.affine[d][seg], out=z[seg]))
                first.append(functools.partial(torch.bmm, h[seg].transpose(1, 2), g[seg], out=grad[seg]))
                more.append(functools.partial(grad[seg].baddbmm_, h[seg].transpose(1, 2), g[seg]))
                if d:
                    back.append(functools.partial(torch.bmm, g[seg], weight[seg], out=buf.dh[d - 1][seg]))
            layers.append((forward, first, more, back))
        return layers

    def _runs(self, buf: _Buffers) -> list[list[tuple]]:
        """Per hidden layer, per run of models sharing an activation: (fill, z, h, slope), views of `buf`'s
        tensors made once (slicing in every iteration costs as much as a small operation), of the run's
        widest model's units only (the others' activation and slope stay 0, as a padded unit's must)."""
        layers = []
        for depth, runs in enumerate(self.net.activation_names):
            start, layer = 0, []
            for name, count in runs:
                part = slice(start, start + count)
                units = slice(0, max(self.net.widths[depth][part]))
                fill = ACTIVATION_AND_SLOPE[name]
                if fill is _identity:  # its slope is 1 whatever z: once
                    buf.slope[depth][part, :, units].fill_(1.0)
                    fill = _pass_through
                layer.append((fill, buf.z[depth][part, :, units], buf.h[depth][part, :, units],
                              buf.slope[depth][part, :, units]))
                start += count
            layers.append(layer)
        return layers

    def _activate(self, depth: int, buf: _Buffers, runs: list[tuple]) -> None:
        """Layer `depth`'s activations and slopes into the buffers, by `runs` (`_runs`)."""
        for fill, z, h, slope in runs:
            fill(z, h, slope)
        mask = self.net.unit_masks[depth]
        if mask is not None:  # padded units of an activation that does not map 0 to 0
            buf.h[depth][..., :-1].mul_(mask)
            buf.slope[depth].mul_(mask)

    @torch.no_grad()
    def forward(self, batches: list) -> torch.Tensor:
        """Each term's loss per model, (terms, models), on its batch ((models, batch, n_in), (models, batch,
        n_out)); the activations stay in the buffers for `backward`."""
        net, losses = self.net, []
        for buf, runs, hidden, x, rows, padding, (inputs, targets) in zip(
                self.buffers, self.runs, self.hidden, self.inputs, self.rows, self.padding, batches, strict=True):
            torch.sub(inputs, net.input_offset, out=x)
            x.div_(net.input_scale)
            for depth, (layer, _, _, _) in enumerate(hidden):
                for operation in layer:
                    operation()
                self._activate(depth, buf, runs[depth])
            torch.bmm(net.affine[-1], (buf.h[-1] if buf.h else buf.x).transpose(1, 2), out=buf.z[-1])
            torch.mul(buf.z[-1], net.output_scale.transpose(1, 2), out=buf.err)
            buf.err.add_(net.output_offset.transpose(1, 2)).sub_(targets.transpose(1, 2))
            if padding is not None:  # a padded row's error is 0, even where its output is not finite
                buf.err.masked_fill_(padding, 0.0)
            torch.mul(buf.err, buf.err, out=buf.g[-1])  # scratch: g[-1] is written again in backward
            torch.sum(buf.g[-1], dim=1, out=buf.loss)
            losses.append((buf.loss.mean(dim=-1) if rows is None else (buf.loss * rows).sum(dim=-1)).mul_(0.5))
        return torch.stack(losses)

    @torch.no_grad()
    def backward(self, coefficients: torch.Tensor) -> None:
        """Write into the net's gradients d/dw of sum over terms t and models m of coefficients[t, m] x
        loss[t, m] (a term's weight, 0 for a frozen model), for the batches of the last `forward`."""
        net = self.net
        for k, (buf, hidden, rows) in enumerate(zip(self.buffers, self.hidden, self.rows, strict=True)):
            g = buf.g[-1]  # (models, outputs, batch); d(1/2 mean |out - y|^2)/dz = err x scale / batch
            torch.mul(buf.err, net.output_scale.transpose(1, 2), out=g)
            if rows is None:
                g.mul_((coefficients[k] / buf.err.shape[2])[:, None, None])
            else:  # each row's weight: 1 / the model's batch size, 0 on padding
                g.mul_(coefficients[k][:, None, None] * rows[:, None, :])
            # the output layer: g transposed, (models, outputs, batch), as its weights are; [h, 1] (the bias's
            # gradient sums g over the batch)
            h = buf.h[-1] if buf.h else buf.x
            if k == 0:
                torch.bmm(g, h, out=self.affine_grads[-1])
            else:
                self.affine_grads[-1].baddbmm_(g, h)
            if buf.h:
                torch.bmm(g.transpose(1, 2), net.weights[-1], out=buf.dh[-1])
            for depth in range(len(hidden) - 1, -1, -1):
                _, first, more, back = hidden[depth]
                torch.mul(buf.dh[depth], buf.slope[depth], out=buf.g[depth])
                for operation in first if k == 0 else more:
                    operation()
                for operation in back:
                    operation()
        for flat_grad, affine_grad in zip(net.affine_grad, self.affine_grads, strict=True):
            flat_grad.copy_(affine_grad)
