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
iteration page-faults and no autograd node is built), then copies the gradients into the stacked
network's `flat_grad`. Every product is at its models' own widths: one per shape of a layer (a
`LayerClass`: the models of one input and output width, consecutive rows of the layer), each layer's
activations kept per width ((rows, batch, width) tensors), reordered between layers where the next
layer's rows are in another order (one gather per width forwards, one backwards). On B_S's grid
(widths 16-64) the padded products did about 3x the arithmetic of the models'. The products are the
ones autograd would compute; the sums of a batch may be taken in another order, which changes the
last bits only (tests/test_fleet.py bounds the difference from a model trained alone).
"""

from __future__ import annotations

import functools

import torch

from .stacked import LayerClass, StackedMLP, consecutive_runs
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


# per activation's name (fhnkit.nets.mlp.ACTIVATIONS): fill h = act(z) and d = act'(z)
ACTIVATION_AND_SLOPE = {"silu": _silu, "tanh": _tanh, "sigmoid": _sigmoid, "relu": _relu, "elu": _elu, "sin": _sin,
                        "identity": _identity}


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
        """The gradients of sum over terms and models of coefficients x loss, into the net's `flat_grad`; those
        of a model whose coefficients are all 0 (frozen) exactly 0, even where its loss is not finite."""
        self.net.zero_grad()
        self.net.backward((coefficients * self.losses).sum())
        self.net.zero_pass_through(self.net.affine_grad)
        silent = (coefficients == 0).all(dim=0)
        for columns, rows in self.net.row_blocks:
            mask = silent if rows is None else silent.index_select(0, rows)
            self.net.flat_grad[:, columns].masked_fill_(mask[:, None], 0.0)
        self.losses = None


def _empty(rows: int, batch: int, width: int, like: torch.Tensor, ones: bool = False) -> torch.Tensor:
    """A (rows, batch, width) buffer of zeros; with `ones`, one column more, the first, of ones (for the bias:
    `StackedMLP.affine`)."""
    out = torch.zeros((rows, batch, width + ones), dtype=like.dtype, device=like.device)
    if ones:
        out[..., 0] = 1.0
    return out


class _LayerInput:
    """Layer d's input of one width (the rows of layer d whose models have `width` inputs, in layer d's order),
    for one term: the output of the layer before of that width (or the scaled inputs) itself where it holds
    them in this order, else a copy reordered each forward (and its gradient reordered back in backward)."""

    def __init__(self, rows: list[int], models: list[int], source_models: list[int], source: torch.Tensor,
                 source_grad: torch.Tensor | None, width: int, batch: int, like: torch.Tensor):
        self.position = {r: k for k, r in enumerate(rows)}  # a row of layer d -> its place here
        place = {model: k for k, model in enumerate(source_models)}
        index = [place[model] for model in models]
        if index == list(range(source.shape[0])):
            self.index = self.inverse = None
            self.h, self.dh = source, source_grad
        else:
            self.index = torch.tensor(index, device=like.device)
            self.inverse = torch.argsort(self.index)
            self.h = _empty(len(rows), batch, width, like, ones=True)
            self.dh = None if source_grad is None else _empty(len(rows), batch, width, like)
        self.source, self.source_grad = source, source_grad

    def gather(self) -> None:
        if self.index is not None:
            torch.index_select(self.source, 0, self.index, out=self.h)

    def scatter_grad(self) -> None:
        if self.index is not None and self.source_grad is not None:
            torch.index_select(self.dh, 0, self.inverse, out=self.source_grad)


class _TermBuffers:
    """Every tensor one term's forward and backward write, for a batch of `batch` rows, each layer's at its
    models' own widths: per hidden layer and width, the rows of that layer of that width (consecutive:
    `StackedMLP.rows`) as one (rows, batch, width) tensor of pre-activations `z`, activations `h` (with a
    first column of ones), slopes act'(z), gradients dL/dz `g` and dL/dh `dh`; per layer and input width,
    its input (`_LayerInput`); the output layer's pre-activations transposed, (rows, outputs, batch), as the
    product that gives them (`StackedMLP.affine`), and so are its error and gradient."""

    def __init__(self, net: StackedMLP, batch: int):
        like, n, depth = net.flat, net.n_models, len(net.weights)
        self.x = _empty(n, batch, net.weights[0].shape[2], like, ones=True)  # the scaled inputs, in model order
        self.groups, self.z, self.h, self.slope, self.g, self.dh = [], [], [], [], [], []
        for d in range(depth - 1):
            groups: dict[int, slice] = {}
            for c in net.layer_classes[d]:
                first = groups.get(c.n_out, c.rows)
                groups[c.n_out] = slice(first.start, c.rows.stop)
            self.groups.append(groups)
            for name, ones in (("z", False), ("h", True), ("slope", False), ("g", False), ("dh", False)):
                getattr(self, name).append({w: _empty(s.stop - s.start, batch, w, like, ones)
                                            for w, s in groups.items()})
        self.inputs = []  # per layer, per input width
        for d in range(depth):
            widths = sorted({c.n_in for c in net.layer_classes[d]})
            layer = {}
            for width in widths:
                rows = [r for c in net.layer_classes[d] if c.n_in == width for r in range(c.rows.start, c.rows.stop)]
                models = [net.rows[d][r] for r in rows]
                if d == 0:
                    source, source_grad, source_models = self.x, None, list(range(n))
                else:
                    group = self.groups[d - 1][width]
                    source, source_grad = self.h[d - 1][width], self.dh[d - 1][width]
                    source_models = net.rows[d - 1][group]
                layer[width] = _LayerInput(rows, models, source_models, source, source_grad, width, batch, like)
            self.inputs.append(layer)
        n_out = net.weights[-1].shape[1]
        self.out = torch.empty((n, n_out, batch), dtype=like.dtype, device=like.device)
        self.err, self.g_out = torch.empty_like(self.out), torch.empty_like(self.out)
        self.targets = torch.empty((n, batch, n_out), dtype=like.dtype, device=like.device)
        self.loss = torch.empty((n, batch), dtype=like.dtype, device=like.device)


class DataTermsStep:
    """Losses (forward) and gradients (backward) of a stacked group's data terms, by hand, each layer's
    products at its models' own widths (one product per `LayerClass`: no padded unit is computed)."""

    def __init__(self, net: StackedMLP, terms: list, rows: list[torch.Tensor | None] | None = None):
        if not self.applies(net, terms):
            raise ValueError("DataTermsStep takes data terms only, with activations it knows")
        self.net, self.terms = net, terms
        rows = rows or [None] * len(terms)
        # the output layer's models in its rows' order (None: model order): targets, scales, row weights and
        # coefficients are reordered to it, the losses back
        self.out_models = net.row_models[-1]
        self.output_scale = self._out_order(net.output_scale).transpose(1, 2)  # (rows, outputs, 1)
        self.output_offset = self._out_order(net.output_offset).transpose(1, 2)
        self.rows = [None if r is None else self._out_order(r) for r in rows]
        self.padding = [None if r is None else (r == 0)[:, None, :] for r in self.rows]  # (rows, 1, batch)
        self.buffers = [_TermBuffers(net, t.batch_size if r is None else r.shape[1])
                        for t, r in zip(terms, self.rows, strict=True)]
        # each class's gradient of its weight and bias (`StackedMLP.affine`, at its own size), summed over the
        # terms here and then copied into `flat_grad`; a pass-through layer's stays 0
        self.grads = [[None if c.through else torch.zeros(self._weights(d, c).shape, dtype=net.flat.dtype,
                                                          device=net.flat.device)
                       for c in classes] for d, classes in enumerate(net.layer_classes)]
        self.plans = [self._plan(buf) for buf in self.buffers]
        # per layer, whether each row's model has all coefficients 0 (its gradients are written as 0, even
        # where its loss is not finite), and each class's gradient with the view of `flat_grad` it goes to
        self.silent = torch.zeros((len(net.weights), net.n_models), dtype=torch.bool, device=net.flat.device)
        self.zero = torch.zeros((), dtype=net.flat.dtype, device=net.flat.device)
        self.copies = [(self.silent[d, c.rows][:, None, None], grad, self._weights(d, c, net.affine_grad))
                       for d, classes in enumerate(net.layer_classes)
                       for c, grad in zip(classes, self.grads[d], strict=True) if grad is not None]

    @staticmethod
    def applies(net: StackedMLP, terms: list) -> bool:
        """Whether every term is a data term and every activation has a derivative here."""
        return all(type(t) is DataTerm for t in terms) and all(
            name in ACTIVATION_AND_SLOPE for runs in net.activation_names for name, _ in runs)

    def _out_order(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.out_models is None else t.index_select(0, self.out_models)

    def _weights(self, d: int, c: LayerClass, of: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Class c's weights and biases in layer d, a view of `StackedMLP.affine` (or of `of`, its gradient):
        (rows, 1 + in, out) in a hidden layer, (rows, out, 1 + in) in the output layer."""
        affine = (self.net.affine if of is None else of)[d]
        if d == len(self.net.affine) - 1:
            return affine[c.rows, :, : c.n_in + 1]
        return affine[c.rows, : c.n_in + 1, : c.n_out]

    def _plan(self, buf: _TermBuffers) -> dict:
        """The operations of one term's forward and backward, on views of `buf` and the net made once (slicing
        in every iteration costs as much as a small operation): per layer, its forward (inputs gathered,
        products, activations), its weight gradients (the first term's; a further term's, added) and its
        input gradients (products, then reordered back to the layer before)."""
        net, depth = self.net, len(self.net.weights)
        forward, first, more, back = ([[] for _ in range(depth)] for _ in range(4))
        for d, classes in enumerate(net.layer_classes):
            inputs, output = buf.inputs[d], d == depth - 1
            forward[d] += [i.gather for i in inputs.values()]
            for c, grad in zip(classes, self.grads[d], strict=True):
                given = inputs[c.n_in]
                at = slice(given.position[c.rows.start], given.position[c.rows.stop - 1] + 1)
                h, dh, weights = given.h[at], None if given.dh is None else given.dh[at], self._weights(d, c)
                if output:
                    g = buf.g_out[c.rows]
                    forward[d].append(functools.partial(torch.bmm, weights, h.transpose(1, 2), out=buf.out[c.rows]))
                    first[d].append(functools.partial(torch.bmm, g, h, out=grad))
                    more[d].append(functools.partial(grad.baddbmm_, g, h))
                    if dh is not None:
                        back[d].append(functools.partial(torch.bmm, g.transpose(1, 2), weights[..., 1:], out=dh))
                    continue
                group = buf.groups[d][c.n_out]
                mine = slice(c.rows.start - group.start, c.rows.stop - group.start)
                z, g = buf.z[d][c.n_out][mine], buf.g[d][c.n_out][mine]
                if c.through:  # an identity: its product I h is h exactly, its input gradient g, no weights
                    forward[d].append(functools.partial(buf.h[d][c.n_out][mine, :, 1:].copy_, h[..., 1:]))
                    buf.slope[d][c.n_out][mine].fill_(1.0)
                    if dh is not None:
                        back[d].append(functools.partial(dh.copy_, g))
                    continue
                forward[d].append(functools.partial(torch.bmm, h, weights, out=z))
                first[d].append(functools.partial(torch.bmm, h.transpose(1, 2), g, out=grad))
                more[d].append(functools.partial(grad.baddbmm_, h.transpose(1, 2), g))
                if dh is not None:
                    back[d].append(functools.partial(torch.bmm, g, weights[:, 1:].transpose(1, 2), out=dh))
            if not output:  # activations and slopes, per width, of each run of rows of one activation
                for width in buf.groups[d]:
                    names = [(c.through, c.activation) for c in classes if c.n_out == width]
                    sizes = [c.rows.stop - c.rows.start for c in classes if c.n_out == width]
                    start = 0
                    for (through, name), run in consecutive_runs(names):
                        count = sum(sizes[run])
                        part = slice(start, start + count)
                        start += count
                        if not through:
                            forward[d].append(functools.partial(
                                ACTIVATION_AND_SLOPE[name], buf.z[d][width][part], buf.h[d][width][part, :, 1:],
                                buf.slope[d][width][part]))
            back[d] += [i.scatter_grad for i in inputs.values()]
        return {"forward": forward, "first": first, "more": more, "back": back}

    @torch.no_grad()
    def forward(self, batches: list) -> torch.Tensor:
        """Each term's loss per model, (terms, models), on its batch ((models, batch, n_in), (models, batch,
        n_out)); the activations stay in the buffers for `backward`."""
        net, losses = self.net, []
        for buf, plan, rows, padding, (inputs, targets) in zip(
                self.buffers, self.plans, self.rows, self.padding, batches, strict=True):
            x = buf.x[..., 1:]
            torch.sub(inputs, net.input_offset, out=x)
            x.div_(net.input_scale)
            for layer in plan["forward"]:
                for operation in layer:
                    operation()
            if self.out_models is not None:
                torch.index_select(targets, 0, self.out_models, out=buf.targets)
                targets = buf.targets
            torch.mul(buf.out, self.output_scale, out=buf.err)
            buf.err.add_(self.output_offset).sub_(targets.transpose(1, 2))
            if padding is not None:  # a padded row's error is 0, even where its output is not finite
                buf.err.masked_fill_(padding, 0.0)
            torch.mul(buf.err, buf.err, out=buf.g_out)  # scratch: g_out is written again in backward
            torch.sum(buf.g_out, dim=1, out=buf.loss)
            losses.append((buf.loss.mean(dim=-1) if rows is None else (buf.loss * rows).sum(dim=-1)).mul_(0.5))
        losses = torch.stack(losses)
        return losses if net.output_order is None else losses.index_select(1, net.output_order)

    @torch.no_grad()
    def backward(self, coefficients: torch.Tensor) -> None:
        """Write into the net's gradients d/dw of sum over terms t and models m of coefficients[t, m] x
        loss[t, m] (a term's weight, 0 for a frozen model), for the batches of the last `forward`; those of a
        model whose coefficients are all 0 exactly 0, even where its loss is not finite."""
        net, silent = self.net, (coefficients == 0).all(dim=0)
        if self.out_models is not None:
            coefficients = coefficients.index_select(1, self.out_models)
        for k, (buf, plan, rows) in enumerate(zip(self.buffers, self.plans, self.rows, strict=True)):
            g = buf.g_out  # (rows, outputs, batch); d(1/2 mean |out - y|^2)/dz = err x scale / batch
            torch.mul(buf.err, self.output_scale, out=g)
            if rows is None:
                g.mul_((coefficients[k] / buf.err.shape[2])[:, None, None])
            else:  # each row's weight: 1 / the model's batch size, 0 on padding
                g.mul_(coefficients[k][:, None, None] * rows[:, None, :])
            for d in range(len(net.weights) - 1, -1, -1):
                if d < len(net.weights) - 1:
                    for width in buf.groups[d]:
                        torch.mul(buf.dh[d][width], buf.slope[d][width], out=buf.g[d][width])
                for operation in plan["first" if k == 0 else "more"][d]:
                    operation()
                for operation in plan["back"][d]:
                    operation()
        for d, rows in enumerate(net.row_models):
            if rows is None:
                self.silent[d].copy_(silent)
            else:
                torch.index_select(silent, 0, rows, out=self.silent[d])
        for mask, grad, into in self.copies:
            torch.where(mask, self.zero, grad, out=into)

