"""Sampling as the device does it: Gumbel-max over the head's integer accumulators, bit for bit.

For temperature ``T > 0`` the device picks ``argmax_j ( y_j + G[r_j] )`` (the first maximum) where

- ``y_j = sat(round(acc_j · k.mant · 2^(k.exp + FRAC)))`` in ``Y_BITS`` signed bits: the logit over ``T`` in units of
  ``2^−FRAC`` nats, with ``k = scale · (1/T)`` the product of the head's output scale and the host's ``1/T``, both
  :class:`~mmfree.host.fixed.Scalar` (one rounding, as the scalar unit multiplies);
- ``G[i] = round(−ln(−ln((i + ½) / 2^TABLE_BITS)) · 2^FRAC)``: quantiles of the standard Gumbel distribution;
- ``r_j``: the low ``TABLE_BITS`` bits of a 32-bit Galois LFSR, which then steps ``TABLE_BITS`` times (right shift,
  feedback ``TAPS`` when the bit shifted out is 1). The LFSR state carries over from logit to logit and from token to
  token; the seed sets it (0 is replaced by 1: an LFSR at 0 stays there).

``T = 0`` is greedy: the first maximum of ``acc``. The noise table has 256 entries, so the sampled distribution is
softmax(logits / T) up to the table's quantization (tests/test_gumbel.py: 20,000 draws from 12 tokens at T = 0.5
and 1 stay within 0.012 of softmax per token).
"""

import numpy as np

from .fixed import Scalar, round_shift, saturate

__all__ = ["FRAC", "TABLE_BITS", "TAPS", "Y_BITS", "gumbel_table", "GumbelSampler"]

FRAC = 10
TABLE_BITS = 8
Y_BITS = 24
#: x^32 + x^22 + x^2 + x + 1, Galois form (right shift)
TAPS = 0x80200003


def gumbel_table():
    """``G`` (int64, ``2^TABLE_BITS`` entries) in Q.FRAC."""
    u = (np.arange(1 << TABLE_BITS) + 0.5) / (1 << TABLE_BITS)
    return np.round(-np.log(-np.log(u)) * (1 << FRAC)).astype(np.int64)


def _step_table():
    """``STEP[b]``: what ``TABLE_BITS`` LFSR steps XOR into ``state >> TABLE_BITS`` when the low bits were ``b``."""
    table = []
    for low in range(1 << TABLE_BITS):
        state = low
        for _ in range(TABLE_BITS):
            state = (state >> 1) ^ (TAPS if state & 1 else 0)
        table.append(state)
    return table


_STEP = _step_table()
_TABLE = gumbel_table()


class GumbelSampler:
    """The device's sampler with its LFSR state; ``seed`` sets the state (``reseed`` again later)."""

    def __init__(self, seed=1):
        self.reseed(seed)

    def reseed(self, seed):
        self.state = (int(seed) & 0xFFFFFFFF) or 1

    def noise_indices(self, count):
        """The next ``count`` table indices ``r_j`` (advances the LFSR)."""
        state, indices = self.state, np.empty(count, dtype=np.int64)
        mask = (1 << TABLE_BITS) - 1
        for j in range(count):
            low = state & mask
            indices[j] = low
            state = (state >> TABLE_BITS) ^ _STEP[low]
        self.state = state
        return indices

    def sample(self, acc, scale, inv_temperature):
        """The token for accumulators ``acc`` (1-D int), the head's ``scale`` and ``1/T`` (Scalars; ``None`` for
        greedy)."""
        acc = np.asarray(acc, dtype=np.int64)
        if inv_temperature is None:
            return int(np.argmax(acc))
        k = scale * inv_temperature
        y = saturate(round_shift(acc * k.mant, -(k.exp + FRAC)), Y_BITS)
        return int(np.argmax(y + _TABLE[self.noise_indices(len(acc))]))

    @staticmethod
    def inverse_temperature(temperature, bits=16):
        """``1/T`` as the host sends it (None for ``T = 0``)."""
        if temperature < 0:
            raise ValueError(f"temperature must be ≥ 0, not {temperature}")
        return None if temperature == 0 else Scalar.from_float(1.0 / temperature, bits)
