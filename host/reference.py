"""Float reference of HGRNBit in NumPy: the reference code's equations with its fake quantization.

This is the model the golden model is measured against (``docs/numerics.md``). It follows the code form of the
reference implementation: every projection is a BitLinear with its own RMSNorm and int8 absmax activation
quantization, the MLGRU uses per-layer lower bounds and ``RMSNorm(g) ⊙ SiLU(h)`` as its output gate.
"""

import numpy as np

from .model import check_tokens
from .quant import quantize_activations

__all__ = ["FloatReference", "rmsnorm", "sigmoid", "silu"]


def rmsnorm(x, weight, eps):
    """``x / sqrt(mean(x²) + eps) ⊙ weight`` over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def silu(x):
    return x * sigmoid(x)


class FloatReference:
    """Float forward pass of a :class:`~mmfree.host.model.Model`.

    Parameters
    ----------
    model : Model
    dtype : numpy dtype
        Arithmetic precision; float64 by default (the fidelity baseline), float32 to match a float32 trainer.

    The recurrent state is an array of shape (L, H): the MLGRU hidden state of each layer.
    """

    def __init__(self, model, dtype=np.float64):
        self.model = model
        self.config = model.config
        self.dtype = np.dtype(dtype)
        self._lower_bounds = model.lower_bound_values().astype(self.dtype)
        self._trits = {}

    def init_state(self):
        return np.zeros((self.config.num_layers, self.config.hidden_size), dtype=self.dtype)

    def bitlinear(self, proj, x):
        """``y = T · quant(RMSNorm(x) ⊙ w) · a · β / 127`` for x of shape (T, in)."""
        trits = self._trits.get(id(proj))
        if trits is None:
            trits = self._trits[id(proj)] = proj.codes.T.astype(self.dtype)
        xn = rmsnorm(x, proj.norm.astype(self.dtype), self.config.norm_eps)
        q, a = quantize_activations(xn)
        return (q @ trits) * (a * (proj.beta / 127.0))

    def forward(self, tokens, state=None):
        """Teacher-forced forward pass over a sequence.

        Parameters
        ----------
        tokens : sequence of int, length T
        state : ndarray, shape (L, H), optional
            State before the first token (zeros when omitted).

        Returns
        -------
        logits : ndarray, shape (T, V)
        state : ndarray, shape (L, H)
            State after the last token.
        """
        tokens = check_tokens(tokens, self.config.vocab_size)
        state = self.init_state() if state is None else np.array(state, dtype=self.dtype)
        eps = self.config.norm_eps
        x = self.model.embeddings[tokens].astype(self.dtype)
        for index, layer in enumerate(self.model.layers):
            lb = self._lower_bounds[index]
            xa = rmsnorm(x, layer.attn_norm.astype(self.dtype), eps)
            f = lb + (1 - lb) * sigmoid(self.bitlinear(layer.f_proj, xa))
            i = silu(self.bitlinear(layer.i_proj, xa)) * (1 - f)
            h = np.empty_like(i)
            hidden = state[index]
            for t in range(len(tokens)):
                hidden = f[t] * hidden + i[t]
                h[t] = hidden
            state[index] = hidden
            gated = rmsnorm(self.bitlinear(layer.g_proj, xa), layer.g_norm.astype(self.dtype), eps) * silu(h)
            x = x + self.bitlinear(layer.o_proj, gated)
            gate, up = np.split(self.bitlinear(layer.gate_proj, rmsnorm(x, layer.mlp_norm.astype(self.dtype), eps)),
                                2, axis=-1)
            x = x + self.bitlinear(layer.down_proj, silu(gate) * up)
        logits = self.bitlinear(self.model.lm_head, rmsnorm(x, self.model.norm.astype(self.dtype), eps))
        return logits, state
