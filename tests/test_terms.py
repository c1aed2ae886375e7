"""Loss terms draw their batches a block at a time exactly as one at a time.

A fleet stages each model's batches for a block of iterations with one call per term
(`draw_block`); a model trained alone draws one batch per iteration (`draw`). Both must give
the same batches from the same generator state, and leave the generator in the same state,
or a fleet model would not see the batches it sees alone. This rests on torch's CPU generator
filling a tensor element after element; a torch that changes that fails here.
"""

from __future__ import annotations

import pytest
import torch

from fhnkit.cell.model import FHNParams
from fhnkit.training.terms import BoxSampler, DataTerm, InitialTerm, PhysicsTerm

BLOCK = 37


def _terms():
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
def test_a_block_holds_the_batches_drawn_one_by_one(name):
    term = _terms()[name]
    one_by_one, in_a_block = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    singles = [_parts(term.draw(one_by_one)) for _ in range(BLOCK)]
    block = _parts(term.draw_block(in_a_block, BLOCK))
    for part, single_parts in zip(block, zip(*singles, strict=True), strict=True):
        assert part.shape[0] == BLOCK
        assert torch.equal(part, torch.stack(single_parts))
    assert torch.equal(one_by_one.get_state(), in_a_block.get_state())
    # and the stream goes on alike after the block
    assert all(torch.equal(a, b) for a, b in zip(_parts(term.draw(one_by_one)), _parts(term.draw(in_a_block)),
                                                 strict=True))
