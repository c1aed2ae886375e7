"""Counter-based random draws: a training batch as a pure function of (stream, draw number, position).

Every loss term of a model draws from its own stream, seeded `torch_seed + 1 + term index`; its
k-th batch (k = the iteration) is computed, not generated: each of its values is a 32-bit integer
hash of (stream seed, k, position in the batch). Integer arithmetic gives the same bits on a CPU
and a GPU, so a model draws the same batches on any device, alone or in a fleet (one call draws a
batch for every model of a group at once, on the device, inside a CUDA graph), and a resumed run
needs nothing but its iteration to go on drawing where it stopped.

The hash is Chris Wellons' "lowbias32" integer mixer, on int64 tensors holding 32-bit values
(each multiplier taken as a signed 32-bit number, so that no product leaves int64's range). A
uniform number is the hash's top 24 bits times 2^-24 (exact in float32); a row index is the hash
modulo the number of rows (bias below rows / 2^32).
"""

from __future__ import annotations

import torch

DRAWS = "counter-lowbias32"  # recorded in checkpoints: a state drawn otherwise cannot go on here
MASK32 = 0xFFFFFFFF
UNIT = 2.0 ** -24  # one step of a 24-bit uniform number, exact in float32
_POSITION_SALT, _DRAW_SALT = 0x5BD1E995, 0x9E3779B9


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """x * m mod 2^32, for 0 <= x < 2^32 (int64) and 0 <= m < 2^32, in two operations: m taken as m - 2^32
    where m >= 2^31 (the same residue), so that the product's magnitude stays below 2^63 (no int64 overflow)
    and its low 32 bits, in two's complement, are those of x * m."""
    signed = m - (1 << 32) if m >= 1 << 31 else m
    return (x * signed) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 of each value of x (int64 in [0, 2^32)): a well-mixed 32-bit integer, the same on any device."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class Draws:
    """The random integers of a set of streams (one per model), of `size` values per draw.

    `seeds`: one stream seed per model (a term's `torch_seed + 1 + index`); `__call__(k)` gives, for
    draw numbers k (models,) int64 on the device, the (models, size) hashes of each model's k-th draw.
    """

    def __init__(self, seeds: list[int], size: int, device):
        self.device = torch.device(device)
        seeds = torch.tensor([seed & MASK32 for seed in seeds], dtype=torch.int64, device=self.device)
        self.streams = hash32(seeds)[:, None]  # (models, 1)
        positions = torch.arange(size, dtype=torch.int64, device=self.device)
        self.positions = hash32(positions ^ _POSITION_SALT)[None, :]  # (1, size)

    def __call__(self, draw: torch.Tensor) -> torch.Tensor:
        """(models, size) int64 hashes of each model's draw number `draw` (models,) or (,); for a column of
        draw numbers (iterations, 1), those of each: (iterations, models, size)."""
        k = (draw.unsqueeze(-1) * _DRAW_SALT) & MASK32  # the golden-ratio step (k < 2^31: no overflow)
        return hash32(hash32(self.streams ^ k) ^ self.positions)

    def uniform(self, draw: torch.Tensor) -> torch.Tensor:
        """(models, size) float32 uniform numbers in [0, 1) (see `__call__` for a column of draw numbers)."""
        return (self(draw) >> 8).to(torch.float32) * UNIT
