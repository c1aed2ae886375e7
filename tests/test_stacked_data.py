"""The data terms' gradients by hand (`fhnkit.training.stacked_data`) against autograd's, model by model."""

from __future__ import annotations

import itertools

import pytest
import torch

from fhnkit.nets.mlp import ACTIVATIONS, MLP, make_spec
from fhnkit.training.stacked import StackedMLP, stack_order
from fhnkit.training.stacked_data import ACTIVATION_AND_SLOPE, DataTermsStep
from fhnkit.training.terms import DataTerm, PhysicsTerm


def _nets(activations, widths=(5, 12), depth=2, seed=0):
    torch.manual_seed(seed)
    nets = [MLP(make_spec(["t", "u0", "w0"], ["u", "w"], list(zip(acts, ws, strict=True)), [0, -0.1, 0],
                          [10, 1.1, 0.2], [0.4, 0.1], [0.7, 0.2]))
            for acts in itertools.product(activations, repeat=depth)
            for ws in itertools.product(widths, repeat=depth)]
    return [nets[i] for i in stack_order(nets)]


def _model_grad(net, i):
    """Model i's gradients: its row of each layer's block of `flat_grad`."""
    return torch.cat([net.flat_grad[r, columns] for r, columns in zip(net.model_rows(i), net.columns, strict=True)])


def _batches(n_models, sizes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand((n_models, b, 3), generator=gen) * torch.tensor([10.0, 1.2, 0.2]) - torch.tensor([0, 0.1, 0]),
             torch.rand((n_models, b, 2), generator=gen)) for b in sizes]


def test_every_activation_of_the_networks_has_its_slope():
    assert set(ACTIVATION_AND_SLOPE) == set(ACTIVATIONS)
    z = torch.linspace(-3, 3, 101, dtype=torch.float64).requires_grad_(True)
    for name, fill in ACTIVATION_AND_SLOPE.items():
        want = ACTIVATIONS[name]()(z)
        (slope,) = torch.autograd.grad(want.sum(), z)
        h, d = torch.empty_like(z), torch.empty_like(z)
        fill(z.detach(), h, d)
        assert torch.allclose(h, want.detach(), atol=1e-12), name
        assert torch.allclose(d, slope, atol=1e-12), name


@pytest.mark.parametrize("activations", [("silu", "tanh"), ("sigmoid", "relu"), ("elu", "sin")])
def test_losses_and_gradients_equal_autograds(activations):
    nets = _nets(activations)
    by_hand_net, autograd_net = StackedMLP(nets), StackedMLP(nets)
    n = by_hand_net.n_models
    terms = [DataTerm(torch.zeros(9, 3), torch.zeros(9, 2), 7, 1.0),
             DataTerm(torch.zeros(9, 3), torch.zeros(9, 2), 3, 0.5, name="data_region")]
    batches = _batches(n, (7, 3))
    weights = torch.tensor([[1.0] * n, [0.5] * n])
    active = torch.ones(n, dtype=torch.bool)
    active[1] = False  # a frozen model gets no gradient
    step = DataTermsStep(by_hand_net, terms)
    losses = step.forward(batches)
    step.backward(weights * active)

    want = torch.stack([t.value(autograd_net, b) for t, b in zip(terms, batches, strict=True)])
    total = (weights * want).sum(dim=0)
    autograd_net.zero_grad()
    autograd_net.backward(torch.where(active, total, 0.0).sum())
    assert torch.allclose(losses, want.detach(), rtol=1e-6, atol=1e-7)
    scale = float(autograd_net.flat_grad.abs().max())
    assert scale > 0
    assert float((by_hand_net.flat_grad - autograd_net.flat_grad).abs().max()) <= 1e-5 * scale
    assert float(_model_grad(by_hand_net, 1).abs().max()) == 0.0
    assert all(float(_model_grad(by_hand_net, i).abs().max()) > 0.0 for i in range(n) if i != 1)


def test_a_padded_unit_gets_no_gradient():
    nets = _nets(("sigmoid", "tanh"), widths=(3, 9))
    net = StackedMLP(nets)
    terms = [DataTerm(torch.zeros(9, 3), torch.zeros(9, 2), 5, 1.0)]
    step = DataTermsStep(net, terms)
    step.forward(_batches(net.n_models, (5,)))
    step.backward(torch.ones((1, net.n_models)))
    for i, model in enumerate(nets):
        width = model.spec["layers"][0][1]
        first, second = net.model_rows(i)[:2]
        assert float(net.weights[0].grad[first, width:].abs().sum()) == 0.0
        assert float(net.biases[0].grad[first, width:].abs().sum()) == 0.0
        assert float(net.weights[1].grad[second, :, width:].abs().sum()) == 0.0
        assert float(net.weights[1].grad[second, :, :width].abs().sum()) > 0.0


def test_a_group_with_other_terms_keeps_autograd():
    net = StackedMLP(_nets(("tanh",)))
    physics = PhysicsTerm(None, None, lambda x: 0.0, 4, 1.0)
    data = DataTerm(torch.zeros(9, 3), torch.zeros(9, 2), 4, 1.0)
    assert DataTermsStep.applies(net, [data]) and not DataTermsStep.applies(net, [data, physics])


@pytest.mark.parametrize("by_hand", [True, False])
def test_a_shallower_model_passes_through_identity_layers_that_never_train(by_hand):
    from fhnkit.training.stacked_data import AutogradTermsStep

    nets = _nets(("silu", "tanh"), depth=1) + _nets(("sigmoid",), widths=(4, 7), depth=3, seed=3)
    net = StackedMLP(nets)
    assert len(net.weights) == 4  # the deepest: 3 hidden layers and the output
    shallow = [i for i, m in enumerate(nets) if len(m.spec["layers"]) == 1]
    assert net.pass_through[0] == []
    for d in (1, 2):  # a layer's rows of the shallow models, and only those, pass through
        through = {net.rows[d][r] for run in net.pass_through[d] for r in range(run.start, run.stop)}
        assert through == set(shallow)
    x = _batches(net.n_models, (6,))[0][0]
    with torch.no_grad():
        alone = torch.stack([m(x[i]) for i, m in enumerate(nets)])
        assert torch.allclose(net(x), alone, atol=1e-6, rtol=1e-5)
    terms = [DataTerm(torch.zeros(9, 3), torch.zeros(9, 2), 6, 1.0)]
    step = (DataTermsStep if by_hand else AutogradTermsStep)(net, terms)
    step.forward(_batches(net.n_models, (6,)))
    step.backward(torch.ones((1, net.n_models)))
    for d in (1, 2):
        for i in range(net.n_models):
            grad = float(net.affine_grad[d][net.model_rows(i)[d]].abs().max())
            assert (grad == 0.0) if i in shallow else (grad > 0.0)  # the identity layers: no step
    for i in shallow:  # a shallow model's output layer trains
        assert float(net.affine_grad[3][net.model_rows(i)[3]].abs().max()) > 0.0
    for i in shallow:  # its own weights come back from their places in the stack
        copy = MLP(nets[i].spec)
        net.copy_into(i, copy)
        assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), nets[i].state_dict().values(),
                                                    strict=True))
