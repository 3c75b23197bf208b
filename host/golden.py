"""The golden model: HGRNBit in integers and fixed point, exactly as the accelerator computes it.

Every value is an integer with a documented format (``docs/numerics.md``); the gateware must equal this model bit
for bit. Formats are the fields of :class:`Formats`.

The central idea is the fused BitLinear. Every projection's input passes through one or two RMSNorms and then
absmax quantization, which ignores positive scaling, so

* the int8 input is ``q = round(127 · p / max|p|)`` with ``p = v ⊙ c``, where ``v`` is the integer input vector
  and ``c`` the product of the norm weights in front of the projection (a constant vector);
* the output scale is ``β/127 · max|p| · ρ`` where ρ is the product of the RMSNorms' ``1/sqrt(ms + ε)`` factors.
  For one norm over ``v`` that is ``1/sqrt(A + ε)``, ``A = mean(v²)``; for a norm over ``a`` whose result, times
  some vector, feeds the projection's own norm, it is ``1/sqrt(B + ε·(A + ε))`` with ``A = mean(a²)`` and ``B``
  the mean square of what the second norm sees, scaled back by ``sqrt(A + ε)``. Mean squares need the true scale
  of ``v`` (its *unit*, a per-vector :class:`~mmfree.host.fixed.Scalar`); everything else is scale-free.
"""

from dataclasses import dataclass, replace

import numpy as np

from .fixed import Scalar, SigmoidTable, bit_length, round_shift, rsqrt_scalar, saturate
from .model import check_tokens

__all__ = ["Formats", "Projection", "Arithmetic", "GoldenModel"]


@dataclass(frozen=True)
class Formats:
    """Numeric formats of the accelerator (``Q.f`` means ``f`` fractional bits)."""

    #: residual stream: signed ``residual_bits`` integers; the fraction bits are set per model so that the
    #: largest embedding value leaves ``residual_headroom`` bits of growth before saturation
    residual_bits: int = 32
    residual_headroom: int = 8
    #: constant vectors (norm weights and their products): signed mantissas, one exponent per vector
    const_bits: int = 16
    #: embedding rows: signed mantissas, one exponent per row
    embed_bits: int = 20
    #: the quantizer normalizes ``|p|`` so that ``max|p|`` has exactly ``quant_bits`` bits
    quant_bits: int = 16
    #: bits of the quantizer's reciprocal ``R ≈ 127 · 2^r / M'``, ``r = quant_bits + recip_bits − 7``
    recip_bits: int = 16

    @property
    def recip_shift(self):
        return self.quant_bits + self.recip_bits - 7
    #: bits of a vector kept for its sum of squares
    reduce_bits: int = 16
    #: mantissa bits of per-vector scalars (scales, mean squares, rsqrt)
    scalar_bits: int = 16
    #: inputs of σ/SiLU: signed ``act_bits`` integers in Q.act_frac, saturating
    act_bits: int = 28
    act_frac: int = 20
    #: σ outputs, f, 1 − f and (1 − lb): Q0.gate_frac
    gate_frac: int = 15
    #: σ table: segments of 2^-sigmoid_segment_bits over [0, sigmoid_range)
    sigmoid_segment_bits: int = 5
    sigmoid_range: int = 8
    #: MLGRU state h and SiLU(h): signed ``state_bits`` integers in Q.state_frac, saturating
    state_bits: int = 32
    state_frac: int = 24
    #: bits dropped from the exact product g · SiLU(h) (at most 51 bits) before it feeds o_proj
    gated_shift: int = 12
    #: bits dropped from the exact product SiLU(g) · u (at most 47 bits) before it feeds down_proj
    glu_shift: int = 8

    @classmethod
    def from_overrides(cls, items):
        """Defaults with ``NAME=BITS`` overrides (as given on benchmark command lines)."""
        fields = {}
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or name not in cls.__dataclass_fields__ or not value.strip().lstrip("-").isdigit():
                raise ValueError(f"bad format override {item!r}: expected NAME=INTEGER with NAME a field of Formats")
            fields[name] = int(value)
        return replace(cls(), **fields)

    def residual_frac(self, embeddings):
        """Fraction bits of the residual stream for a model with these embeddings."""
        peak = float(np.max(np.abs(embeddings)))
        top = int(np.floor(np.log2(peak))) + 1 if peak > 0 else 0
        return self.residual_bits - 1 - self.residual_headroom - top


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


@dataclass(frozen=True)
class Projection:
    """Constants of one fused BitLinear: what the compiler puts in the weight image.

    ``trits`` (float32, out × in, values −1/0/+1), ``combined`` (the int mantissas ``c`` of the product of the norm
    weights in front of the projection), ``constant`` (``β/127`` times ``c``'s exponent) and ``inv_n`` (``1/in``);
    for a projection whose input went through two norms, ``pre`` (the first norm's int mantissas), its exponent
    ``pre_exp`` and ``pre_shift``, the right shift of ``(v >> k)·pre`` into reduce_bits (the bit length of
    ``max|pre|``); else ``pre`` is None.
    """

    trits: np.ndarray
    combined: np.ndarray
    constant: Scalar
    inv_n: Scalar
    pre: np.ndarray = None
    pre_exp: int = 0
    pre_shift: int = 0

    @classmethod
    def from_model(cls, proj, pre_norm, formats):
        """The constants of a :class:`~mmfree.host.model.BitLinear` behind ``pre_norm`` (or None)."""
        bits = formats.scalar_bits
        combined = proj.norm.astype(np.float64)
        pre = {}
        if pre_norm is not None:
            combined = combined * pre_norm.astype(np.float64)
            mant, exp = _bfp(pre_norm, formats.const_bits)
            pre = {"pre": mant, "pre_exp": exp, "pre_shift": int(bit_length(np.abs(mant).max()))}
        mant, exp = _bfp(combined, formats.const_bits)
        return cls(trits=proj.codes.astype(np.float32), combined=mant,
                   constant=Scalar.from_float(proj.beta / 127.0, bits).scaled(exp),
                   inv_n=Scalar.from_float(1.0 / proj.codes.shape[1], bits), **pre)


class Arithmetic:
    """The accelerator's arithmetic: the fused BitLinear and the element-wise epilogues, bit for bit.

    Everything here is independent of a particular model: ``eps`` (the norms' ε as a Scalar) and ``residual_frac``
    (the residual stream's fraction bits) are the only model constants it needs. :class:`GoldenModel` runs a
    model with it; :class:`~mmfree.host.machine.Machine` runs a compiled program with it.
    """

    def __init__(self, formats, eps, residual_frac):
        f = self.formats = formats
        if f.act_frac < f.sigmoid_segment_bits or f.state_frac < f.sigmoid_segment_bits:
            raise ValueError("act_frac and state_frac must be at least sigmoid_segment_bits")
        self.sigmoid = SigmoidTable(f.gate_frac, f.sigmoid_segment_bits, f.sigmoid_range)
        self.eps = eps
        self.residual_frac = residual_frac
        self.residual_unit = Scalar.from_int(1, f.scalar_bits).scaled(-residual_frac)

    # -- the fused BitLinear ------------------------------------------------------------------------------------

    def quantize(self, proj, v):
        """int8 absmax quantization of ``p = w ⊙ c`` per row; returns (q, max|p|, k).

        ``w = sat(round(v · 2^−k))`` is ``v`` cut to reduce_bits signed bits by its :meth:`reduce_shift` ``k``,
        rounded (ties up) and saturated, so that every ``p`` is one 16×16 product and ``p · 2^k`` approximates
        ``v ⊙ c``; rounding keeps the cut unbiased (docs/numerics.md measures the floor). Then
        :meth:`quantize_products`.
        """
        k = self.reduce_shift(v)
        q, peak = self.quantize_products(saturate(round_shift(v, k), self.formats.reduce_bits) * proj.combined)
        return q, peak, k[..., 0]

    def quantize_products(self, p):
        """int8 absmax quantization of ``p`` per row; returns (q, max|p|).

        ``|p|`` and ``M = max|p|`` are shifted by the same ``k`` (right with rounding, or left) so that ``M'`` has
        ``quant_bits`` bits; ``R = ⌊(127 · 2^r + ⌊M'/2⌋) / M'⌋`` once per row (``r = recip_shift``); then
        ``q = sign(p) · min(127, (|p'| · R + 2^(r−1)) >> r)``: one multiply per element.
        """
        f = self.formats
        mag = np.abs(p)
        peak = mag.max(axis=-1, keepdims=True)
        shift = bit_length(peak) - f.quant_bits
        norm = round_shift(mag, shift)
        top = np.maximum(round_shift(peak, shift), 1)
        recip = ((127 << f.recip_shift) + top // 2) // top
        q = np.sign(p) * np.minimum(127, np.right_shift(norm * recip + (1 << (f.recip_shift - 1)), f.recip_shift))
        return q, peak[..., 0]

    def reduce_shift(self, u):
        """Per row, the least ``k ≥ 0`` (arithmetic shift, floor) that fits ``u >> k`` in reduce_bits (int64 array)."""
        return np.maximum(bit_length(np.abs(u).max(axis=-1, keepdims=True)) - (self.formats.reduce_bits - 1), 0)

    def sum_of_squares(self, u):
        """``Σ (u >> k)²`` per row with ``k`` the :meth:`reduce_shift`; returns (sums, k) as Python int lists."""
        shift = self.reduce_shift(u)
        w = np.right_shift(u, shift)
        return (w * w).sum(axis=-1).tolist(), shift[..., 0].tolist()

    def mean_squares(self, u, units, inv_n, exp=0):
        """``mean(u²)`` per row in true units, as Scalars; the value of ``u[t]`` is ``u[t] · units[t] · 2^exp``."""
        bits = self.formats.scalar_bits
        sums, shifts = self.sum_of_squares(u)
        return [Scalar.from_int(s, bits) * inv_n * (unit * unit).scaled(2 * (k + exp))
                for s, k, unit in zip(sums, shifts, units)]

    def pre_mean_squares(self, proj, v, units):
        """``mean((v ⊙ pre)²)`` per row in true units, as the second norm of a two-norm projection sees it.

        ``v`` is first cut to reduce_bits by its own :meth:`reduce_shift` ``k`` (the same ``v >> k`` whose squares
        give the first norm's sum when ``v`` is its input), then ``u = ((v >> k) · pre) >> pre_shift`` fits
        reduce_bits by construction (``pre_shift`` is the bit length of ``max|pre|``, fixed per projection), so the
        hardware needs one 16×16 product and no pass to find ``max|v ⊙ pre|``.
        """
        bits = self.formats.scalar_bits
        k = self.reduce_shift(v)
        u = np.right_shift(np.right_shift(v, k) * proj.pre, proj.pre_shift)
        sums = (u * u).sum(axis=-1).tolist()
        return [Scalar.from_int(s, bits) * proj.inv_n * (unit * unit).scaled(2 * (shift + proj.pre_shift + proj.pre_exp))
                for s, shift, unit in zip(sums, k[..., 0].tolist(), units)]

    def bitlinear(self, proj, v, units=None, first=None):
        """One fused BitLinear over rows of ``v`` (int64, shape (T, in)).

        Parameters
        ----------
        proj : Projection
        v : ndarray of int64, shape (T, in)
        units : list of Scalar, optional
            True value of one LSB of each row of ``v``; without it only the accumulators are returned.
        first : (ndarray, list of Scalar), optional
            For a projection with two norms whose first norm's input is not ``v`` itself: that input and its units.

        Returns
        -------
        acc : ndarray of int64, shape (T, out)
            Exact accumulators.
        scales : list of Scalar or None
            Output scale per row: the value of ``acc[t, j]`` is ``acc[t, j] · scales[t]``.
        """
        q, peak, k = self.quantize(proj, v)
        acc = (q.astype(np.float32) @ proj.trits.T).astype(np.int64)
        if units is None:
            return acc, None
        bits = self.formats.scalar_bits
        if proj.pre is None:
            denominators = [a + self.eps for a in self.mean_squares(v, units, proj.inv_n)]
        else:
            a_vec, a_units = first if first is not None else (v, units)
            a_ms = self.mean_squares(a_vec, a_units, proj.inv_n)
            b_ms = self.pre_mean_squares(proj, v, units)
            denominators = [b + self.eps * (a + self.eps) for a, b in zip(a_ms, b_ms)]
        scales = [proj.constant * Scalar.normalize(m, shift, bits) * unit * rsqrt_scalar(d)
                  for m, shift, unit, d in zip(peak.tolist(), k.tolist(), units, denominators)]
        return acc, scales

    @staticmethod
    def to_fixed(acc, scales, frac, bits):
        """``acc · scale`` per row in Q.frac, rounded (ties up) and saturated to ``bits``.

        Exact for any scale: a left shift of ``bits − 1`` or more saturates every nonzero product (so the product
        is clamped first and the shift capped, keeping int64 from wrapping), and a right shift beyond 62 gives 0.
        """
        mant = np.array([[s.mant] for s in scales], dtype=np.int64)
        shift = np.array([[-(s.exp + frac)] for s in scales], dtype=np.int64)
        product = acc * mant
        limit = 1 << (bits - 1)
        product = np.where(shift < 0, np.clip(product, -limit, limit), product)
        return saturate(round_shift(product, np.clip(shift, -(bits - 1), 62)), bits)

    # -- the epilogues ------------------------------------------------------------------------------------------

    def forget(self, acc_f, s_f, one_minus_lb):
        """``1 − f = round((1 − lb) · σ(−z_f))`` in Q0.gate_frac, computed directly (never as ``1 − σ``)."""
        f = self.formats
        z_f = self.to_fixed(acc_f, s_f, f.act_frac, f.act_bits)
        return round_shift(one_minus_lb * self.sigmoid.complement(z_f, f.act_frac), f.gate_frac)

    def recurrence(self, acc_i, s_i, one_minus_f, hidden):
        """The MLGRU state after each row: ``h = sat(round(f · h) + round(SiLU(z_i) · (1 − f)))``, from ``hidden``."""
        f = self.formats
        forget = (1 << f.gate_frac) - one_minus_f
        z_i = self.to_fixed(acc_i, s_i, f.act_frac, f.act_bits)
        inject = round_shift(self.sigmoid.silu(z_i, f.act_frac) * one_minus_f,
                             f.gate_frac + f.act_frac - f.state_frac)
        h = np.empty_like(inject)
        for t in range(len(inject)):
            hidden = saturate(round_shift(forget[t] * hidden, f.gate_frac) + inject[t], f.state_bits)
            h[t] = hidden
        return h

    def gate(self, acc_g, s_g, h):
        """``v = round(acc_g · SiLU(h))``, o_proj's input, with its units (the first norm is over ``acc_g``)."""
        f = self.formats
        gated = round_shift(acc_g * self.sigmoid.silu(h, f.state_frac), f.gated_shift)
        return gated, [s.scaled(f.gated_shift - f.state_frac) for s in s_g]

    def glu_product(self, acc, scales):
        """``round(SiLU(z_g) · u)``, down_proj's input, with its units; ``acc`` holds g then u."""
        f = self.formats
        gate, up = np.split(acc, 2, axis=-1)
        z_g = self.to_fixed(gate, scales, f.act_frac, f.act_bits)
        product = round_shift(self.sigmoid.silu(z_g, f.act_frac) * up, f.glu_shift)
        return product, [s.scaled(f.glu_shift - f.act_frac) for s in scales]

    def embed_row(self, mant, exp):
        """An embedding row (``mant · 2^exp``, block floating point) in the residual format, saturating."""
        return saturate(round_shift(mant, -(exp + self.residual_frac)), self.formats.residual_bits)

    def residual_add(self, x, acc, scales):
        """``x + sat(round(acc · scale))`` in the residual format, saturating."""
        bits = self.formats.residual_bits
        return saturate(x + self.to_fixed(acc, scales, self.residual_frac, bits), bits)


class GoldenModel(Arithmetic):
    """Bit-exact integer model of the accelerator running a :class:`~mmfree.host.model.Model`.

    The recurrent state is an int64 array of shape (L, H) in Q.state_frac. ``forward`` returns float logits
    (the integer accumulators times the head's output scale) so that it is interchangeable with
    :class:`~mmfree.host.reference.FloatReference`; :meth:`forward_int` returns the accumulators and scales.
    """

    def __init__(self, model, formats=Formats()):
        self.model = model
        self.config = model.config
        super().__init__(formats, Scalar.from_float(self.config.norm_eps, formats.scalar_bits),
                         formats.residual_frac(model.embeddings))
        f = formats
        self.embeddings = [_bfp(row, f.embed_bits) for row in model.embeddings]
        one_minus_lb = 1.0 - model.lower_bound_values()
        self.one_minus_lb = np.round(np.ldexp(one_minus_lb, f.gate_frac)).astype(np.int64)
        self.layers = []
        for layer in model.layers:
            self.layers.append({
                "i": Projection.from_model(layer.i_proj, layer.attn_norm, f),
                "f": Projection.from_model(layer.f_proj, layer.attn_norm, f),
                "g": Projection.from_model(layer.g_proj, layer.attn_norm, f),
                "o": Projection.from_model(layer.o_proj, layer.g_norm, f),
                "gate": Projection.from_model(layer.gate_proj, layer.mlp_norm, f),
                "down": Projection.from_model(layer.down_proj, None, f),
            })
        self.head = Projection.from_model(model.lm_head, model.norm, f)

    def init_state(self):
        return np.zeros((self.config.num_layers, self.config.hidden_size), dtype=np.int64)

    def state_values(self, state):
        """The state as floats."""
        return np.ldexp(np.asarray(state, dtype=np.float64), -self.formats.state_frac)

    def embed(self, tokens):
        """Embedding rows in the residual format."""
        return np.stack([self.embed_row(*self.embeddings[t]) for t in tokens])

    def mlgru(self, index, x, state):
        """Token mixer of layer ``index``: returns its output accumulators and scales, and updates ``state``."""
        layer = self.layers[index]
        units = [self.residual_unit] * len(x)
        acc_f, s_f = self.bitlinear(layer["f"], x, units)
        acc_i, s_i = self.bitlinear(layer["i"], x, units)
        acc_g, s_g = self.bitlinear(layer["g"], x, units)
        one_minus_f = self.forget(acc_f, s_f, self.one_minus_lb[index])
        h = self.recurrence(acc_i, s_i, one_minus_f, state[index])
        state[index] = h[-1]
        gated, units = self.gate(acc_g, s_g, h)
        return self.bitlinear(layer["o"], gated, units, first=(acc_g, s_g))

    def glu(self, index, x):
        """Channel mixer of layer ``index``: ``down(SiLU(g) ⊙ u)``; g and u share the gate projection's scale."""
        acc, scales = self.bitlinear(self.layers[index]["gate"], x, [self.residual_unit] * len(x))
        return self.bitlinear(self.layers[index]["down"], *self.glu_product(acc, scales))

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
        tokens = check_tokens(tokens, self.config.vocab_size)
        state = self.init_state() if state is None else np.array(state, dtype=np.int64)
        x = self.embed(tokens.tolist())
        for index in range(self.config.num_layers):
            x = self.residual_add(x, *self.mlgru(index, x, state))
            x = self.residual_add(x, *self.glu(index, x))
        acc, scales = self.bitlinear(self.head, x, [self.residual_unit] * len(x))
        return acc, scales, state

    def forward(self, tokens, state=None):
        """Same interface as :meth:`FloatReference.forward`: float logits (T, V) and the new state."""
        acc, scales, state = self.forward_int(tokens, state)
        return acc * np.array([[float(s)] for s in scales]), state
