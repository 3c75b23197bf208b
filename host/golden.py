"""The golden model: HGRNBit in integers and fixed point, exactly as the accelerator computes it.

Every value is an integer with a documented format (``docs/numerics.md``); the gateware must equal this model bit
for bit. Formats are the fields of :class:`Formats`.

The central idea is the fused BitLinear. Every projection's input passes through one or two RMSNorms and then
absmax quantization, which ignores positive scaling, so

* the int8 input is ``q = round(127 · p / max|p|)`` with ``p = v ⊙ c``, where ``v`` is the integer input vector
  and ``c`` the product of the norm weights in front of the projection (a constant vector);
* the output scale is ``β · max|p| / (127 · rms(v ⊙ w))``, with ``w`` the first norm's weight (or 1); every RMS
  factor in between cancels. ε is dropped: it only matters for vectors with mean square below ~1e-4, and its
  measured effect is in ``docs/numerics.md``.
"""

from dataclasses import dataclass

import numpy as np

from .fixed import Scalar, SigmoidTable, bit_length, round_shift, rsqrt, saturate

__all__ = ["Formats", "GoldenModel"]


@dataclass(frozen=True)
class Formats:
    """Numeric formats of the accelerator (``Q.f`` means ``f`` fractional bits)."""

    #: residual stream: signed ``residual_bits`` integers in Q.residual_frac, saturating
    residual_bits: int = 32
    residual_frac: int = 16
    #: constant vectors (norm-weight products, embedding rows): signed mantissas, one exponent per vector
    const_bits: int = 16
    #: significant bits of ``p`` kept by the quantizer before its exact division
    quant_bits: int = 24
    #: bits of ``v ⊙ w`` kept for the sum of squares
    reduce_bits: int = 16
    #: mantissa bits of per-vector scalars (scales, rsqrt)
    scalar_bits: int = 16
    #: inputs of σ/SiLU: signed ``act_bits`` integers in Q.act_frac, saturating
    act_bits: int = 16
    act_frac: int = 10
    #: σ outputs, f, 1 − f and (1 − lb): Q0.gate_frac
    gate_frac: int = 24
    #: σ table: segments of 2^-sigmoid_segment_bits over [0, sigmoid_range)
    sigmoid_segment_bits: int = 4
    sigmoid_range: int = 16
    #: MLGRU state h and SiLU(h): signed ``state_bits`` integers in Q.state_frac, saturating
    state_bits: int = 32
    state_frac: int = 16


def _bfp(vector, bits):
    """Block floating point: ``vector ≈ mant · 2^exp`` with ``max|mant| < 2^(bits-1)``; returns (int64, int)."""
    peak = float(np.max(np.abs(vector)))
    if peak == 0:
        return np.zeros(len(vector), dtype=np.int64), 0
    exp = int(np.floor(np.log2(peak))) - (bits - 2)
    mant = np.round(np.ldexp(vector.astype(np.float64), -exp)).astype(np.int64)
    if np.max(np.abs(mant)) >= 1 << (bits - 1):
        exp += 1
        mant = np.round(np.ldexp(vector.astype(np.float64), -exp)).astype(np.int64)
    return mant, exp


class _Projection:
    """Host-side constants of one fused BitLinear: what the compiler puts in the weight image."""

    def __init__(self, proj, pre_norm, formats):
        out_features, in_features = proj.codes.shape
        self.trits = proj.codes.astype(np.float32)
        combined = proj.norm.astype(np.float64)
        if pre_norm is not None:
            combined = combined * pre_norm.astype(np.float64)
            self.pre, pre_exp = _bfp(pre_norm, formats.const_bits)
        else:
            self.pre, pre_exp = None, 0
        self.combined, combined_exp = _bfp(combined, formats.const_bits)
        self.constant = Scalar.from_float(proj.beta * np.sqrt(in_features) / 127.0, formats.scalar_bits) \
            .scaled(combined_exp - pre_exp)


class GoldenModel:
    """Bit-exact integer model of the accelerator running a :class:`~mmfree.host.model.Model`.

    The recurrent state is an int64 array of shape (L, H) in Q.state_frac. ``forward`` returns float logits
    (the integer accumulators times the head's output scale) so that it is interchangeable with
    :class:`~mmfree.host.reference.FloatReference`; :meth:`forward_int` returns the accumulators and scales.
    """

    def __init__(self, model, formats=Formats()):
        self.model = model
        self.config = model.config
        self.formats = formats
        f = formats
        if f.act_frac < f.sigmoid_segment_bits or f.state_frac < f.sigmoid_segment_bits:
            raise ValueError("act_frac and state_frac must be at least sigmoid_segment_bits")
        self.sigmoid = SigmoidTable(f.gate_frac, f.sigmoid_segment_bits, f.sigmoid_range)
        self.embeddings = [_bfp(row, f.const_bits) for row in model.embeddings]
        one_minus_lb = 1.0 - model.lower_bound_values()
        self.one_minus_lb = np.round(np.ldexp(one_minus_lb, f.gate_frac)).astype(np.int64)
        self.layers = []
        for layer in model.layers:
            self.layers.append({
                "i": _Projection(layer.i_proj, layer.attn_norm, f),
                "f": _Projection(layer.f_proj, layer.attn_norm, f),
                "g": _Projection(layer.g_proj, layer.attn_norm, f),
                "o": _Projection(layer.o_proj, layer.g_norm, f),
                "gate": _Projection(layer.gate_proj, layer.mlp_norm, f),
                "down": _Projection(layer.down_proj, None, f),
            })
        self.head = _Projection(model.lm_head, model.norm, f)

    def init_state(self):
        return np.zeros((self.config.num_layers, self.config.hidden_size), dtype=np.int64)

    # -- the fused BitLinear ------------------------------------------------------------------------------------

    def quantize(self, proj, v):
        """int8 absmax quantization of ``p = v ⊙ c`` per row; returns (q, max|p|).

        ``p`` is cut to ``quant_bits`` significant bits (``|p| >> k``, sign kept), then
        ``q = sign(p) · ⌊(254·|p'| + M') / (2·M')⌋``: round half away from zero of ``127 · p' / M'``, exact.
        """
        p = v * proj.combined
        mag = np.abs(p)
        peak = mag.max(axis=-1, keepdims=True)
        shift = np.maximum(bit_length(peak) - self.formats.quant_bits, 0)
        mag, top = np.right_shift(mag, shift), np.maximum(np.right_shift(peak, shift), 1)
        q = np.sign(p) * ((254 * mag + top) // (2 * top))
        return q, peak[..., 0]

    def sum_of_squares(self, proj, v):
        """``Σ (u >> k)²`` with ``u = v ⊙ w`` (w the first norm, or 1), ``k`` so ``u >> k`` fits ``reduce_bits``.

        Returns (sums, k) per row. The shift is arithmetic (floor).
        """
        u = v if proj.pre is None else v * proj.pre
        shift = np.maximum(bit_length(np.abs(u).max(axis=-1, keepdims=True)) - (self.formats.reduce_bits - 1), 0)
        w = np.right_shift(u, shift)
        return (w * w).sum(axis=-1), shift[..., 0]

    def bitlinear(self, proj, v, scaled=True):
        """One fused BitLinear over rows of ``v`` (int64, shape (T, in)).

        Returns the exact accumulators (int64, shape (T, out)) and, if ``scaled``, the output scale of each row as a
        :class:`~mmfree.host.fixed.Scalar` (the value of ``acc[t, j]`` is ``acc[t, j] · scales[t]``).
        """
        q, peak = self.quantize(proj, v)
        acc = (q.astype(np.float32) @ proj.trits.T).astype(np.int64)
        if not scaled:
            return acc, None
        sums, shift = self.sum_of_squares(proj, v)
        bits = self.formats.scalar_bits
        scales = [proj.constant * Scalar.from_int(m, bits) * rsqrt(s, bits).scaled(-int(k))
                  for m, s, k in zip(peak.tolist(), sums.tolist(), shift.tolist())]
        return acc, scales

    @staticmethod
    def to_fixed(acc, scales, frac, bits):
        """``acc · scale`` per row in Q.frac, rounded (ties up) and saturated to ``bits``."""
        mant = np.array([[s.mant] for s in scales], dtype=np.int64)
        shift = np.array([[-(s.exp + frac)] for s in scales], dtype=np.int64)
        return saturate(round_shift(acc * mant, shift), bits)

    # -- the model ----------------------------------------------------------------------------------------------

    def embed(self, tokens):
        """Embedding rows in the residual format."""
        f = self.formats
        rows = [round_shift(self.embeddings[t][0], -(self.embeddings[t][1] + f.residual_frac)) for t in tokens]
        return saturate(np.stack(rows), f.residual_bits)

    def mlgru(self, index, x, state):
        """Token mixer of layer ``index``: returns its output accumulators and scales, and updates ``state``."""
        f, layer, sig = self.formats, self.layers[index], self.sigmoid
        acc_f, s_f = self.bitlinear(layer["f"], x)
        acc_i, s_i = self.bitlinear(layer["i"], x)
        acc_g, _ = self.bitlinear(layer["g"], x, scaled=False)
        # 1 − f = (1 − lb) · σ(−z_f), computed directly; f = 1 − (1 − f)
        z_f = self.to_fixed(acc_f, s_f, f.act_frac, f.act_bits)
        one_minus_f = round_shift(self.one_minus_lb[index] * sig.complement(z_f, f.act_frac), f.gate_frac)
        forget = (1 << f.gate_frac) - one_minus_f
        z_i = self.to_fixed(acc_i, s_i, f.act_frac, f.act_bits)
        inject = round_shift(sig.silu(z_i, f.act_frac) * one_minus_f, f.gate_frac + f.act_frac - f.state_frac)
        h = np.empty_like(inject)
        hidden = state[index]
        for t in range(len(x)):
            hidden = saturate(round_shift(forget[t] * hidden, f.gate_frac) + inject[t], f.state_bits)
            h[t] = hidden
        state[index] = hidden
        # RMSNorm(g) ⊙ SiLU(h): g's scale cancels in o_proj's norm, so the raw accumulators are used
        gated = round_shift(acc_g * sig.silu(h, f.state_frac), f.state_frac)
        return self.bitlinear(layer["o"], gated)

    def glu(self, index, x):
        """Channel mixer of layer ``index``: ``down(SiLU(g) ⊙ u)``; u's scale cancels in down_proj's norm."""
        f, layer = self.formats, self.layers[index]
        acc, scales = self.bitlinear(layer["gate"], x)
        gate, up = np.split(acc, 2, axis=-1)
        z_g = self.to_fixed(gate, scales, f.act_frac, f.act_bits)
        return self.bitlinear(layer["down"], self.sigmoid.silu(z_g, f.act_frac) * up)

    def residual_add(self, x, acc, scales):
        f = self.formats
        return saturate(x + self.to_fixed(acc, scales, f.residual_frac, f.residual_bits), f.residual_bits)

    def forward_int(self, tokens, state=None):
        """Integer forward pass.

        Returns
        -------
        acc : ndarray of int64, shape (T, V)
            The LM head's accumulators.
        scales : list of Scalar, length T
            The head's output scale per token.
        state : ndarray of int64, shape (L, H)
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence")
        if tokens.min() < 0 or tokens.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size})")
        state = self.init_state() if state is None else np.array(state, dtype=np.int64)
        x = self.embed(tokens.tolist())
        for index in range(self.config.num_layers):
            x = self.residual_add(x, *self.mlgru(index, x, state))
            x = self.residual_add(x, *self.glu(index, x))
        acc, scales = self.bitlinear(self.head, x)
        return acc, scales, state

    def forward(self, tokens, state=None):
        """Same interface as :meth:`FloatReference.forward`: float logits (T, V) and the new state."""
        acc, scales, state = self.forward_int(tokens, state)
        return acc * np.array([[float(s)] for s in scales]), state
