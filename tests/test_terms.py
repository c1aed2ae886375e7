"""Loss terms draw their batches by counter: the k-th batch of a stream is a function of (seed, k), the same
for a model alone and for that model inside a fleet group, and the same bits on any device.

The hash is checked against an independent pure-Python lowbias32 (Python integers, no torch), so that
a change of torch's integer kernels (or an overflow) fails here rather than changing every batch.
"""

from __future__ import annotations

import pytest
import torch

from fhnkit.cell.model import FHNParams
from fhnkit.training.draws import Draws, hash32
from fhnkit.training.terms import BoxSampler, DataTerm, InitialTerm, PhysicsTerm, entry


def lowbias32(x: int) -> int:
    """Chris Wellons' lowbias32, on Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_the_hash_is_lowbias32_bit_for_bit():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xDEADBEEF, *range(1000, 5000, 7)]
    got = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [lowbias32(v) for v in values]


def test_a_draw_is_a_function_of_seed_draw_number_and_position():
    draws = Draws([3, 4, 3], size=5, device="cpu")
    k = torch.tensor([10, 10, 10])
    a = draws(k)
    assert a.shape == (3, 5) and torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])
    assert not torch.equal(draws(k + 1)[0], a[0])
    assert torch.equal(draws(torch.tensor(10))[0], a[0])  # one number for all models
    seed, n = 3, 10
    stream = lowbias32(seed)
    step = (n * 0x9E3779B9) & 0xFFFFFFFF
    expect = [lowbias32(lowbias32(stream ^ step) ^ lowbias32(j ^ 0x5BD1E995)) for j in range(5)]
    assert a[0].tolist() == expect


def test_uniform_numbers_fill_the_unit_interval_evenly():
    u = Draws(list(range(50)), size=2000, device="cpu").uniform(torch.tensor(0))
    assert u.dtype == torch.float32 and float(u.min()) >= 0.0 and float(u.max()) < 1.0
    counts = torch.histc(u, bins=10, min=0.0, max=1.0)
    assert float((counts - u.numel() / 10).abs().max()) < 0.02 * u.numel() / 10 * 10  # within 2% per bin


def _terms(device="cpu"):
    gen = torch.Generator().manual_seed(0)
    inputs, targets = torch.rand((1000, 3), generator=gen), torch.rand((1000, 2), generator=gen)
    box = BoxSampler([0.0, -0.5, -0.2], [50.0, 1.0, 0.8])
    return {
        "data": DataTerm(inputs, targets, batch_size=128, weight=1.0),
        "data, batch above the set's size": DataTerm(inputs[:5], targets[:5], batch_size=16, weight=1.0),
        "physics": PhysicsTerm(box, FHNParams(), lambda x: 0.0, batch_size=256, weight=1.0),
        "initial": InitialTerm(box, batch_size=32, weight=1.0),
        "initial, one fixed state": InitialTerm(box, batch_size=1, weight=1.0, fixed_state=[0.5, 0.0]),
    }


def _parts(batch):
    return batch if isinstance(batch, tuple) else (batch,)


@pytest.mark.parametrize("name", list(_terms()))
def test_a_group_draws_for_each_model_the_batches_it_draws_alone(name):
    term = _terms()[name]
    seeds = [11, 12, 13]
    group = type(term).batch_sampler([term] * 3, seeds)
    for k in (0, 1, 57):
        together = _parts(group(torch.tensor(k)))
        for m, seed in enumerate(seeds):
            alone = _parts(entry(type(term).batch_sampler([term], [seed])(torch.tensor(k))))
            assert all(torch.equal(t[m], a) for t, a in zip(together, alone, strict=True)), (name, k, m)


def test_a_data_term_draws_rows_of_its_own_set_in_a_group_of_several_sets():
    small = DataTerm(torch.arange(10.0)[:, None], torch.arange(10.0)[:, None], batch_size=8, weight=1.0)
    large = DataTerm(100 + torch.arange(50.0)[:, None], 100 + torch.arange(50.0)[:, None], batch_size=8, weight=1.0)
    x, y = DataTerm.batch_sampler([small, large, small], [1, 2, 3])(torch.tensor(4))
    assert torch.equal(x, y)
    assert set(x[0, :, 0].tolist()) <= set(range(10)) and set(x[2, :, 0].tolist()) <= set(range(10))
    assert set(x[1, :, 0].tolist()) <= set(range(100, 150)) and len(set(x[1, :, 0].tolist())) > 4


def test_collocation_points_lie_in_their_box():
    term = _terms()["physics"]
    x = entry(PhysicsTerm.batch_sampler([term], [5])(torch.tensor(0)))
    assert x.shape == (256, 3)
    assert (x >= term.sampler.lo).all() and (x < term.sampler.hi).all()
    assert float(x[:, 0].max()) > 40 and float(x[:, 0].min()) < 10  # spread over the box


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(_terms()))
def test_a_gpu_draws_the_bits_a_cpu_draws(name):
    cpu_term, gpu_term = _terms()[name], _terms()[name]
    gpu_term.to("cuda")
    for k in (0, 3):
        a = _parts(type(cpu_term).batch_sampler([cpu_term], [9])(torch.tensor(k)))
        b = _parts(type(gpu_term).batch_sampler([gpu_term], [9])(torch.tensor(k, device="cuda")))
        assert all(torch.equal(x, y.cpu()) for x, y in zip(a, b, strict=True))
