"""In-memory form of an HGRNBit (MatMul-free LM) model after ternarization.

Every projection is a :class:`BitLinear`: ternary codes, the absmean scale β and the weight of its own RMSNorm.
Ternary codes and β are kept as imported (absmean ternarization is not idempotent, so dequantized ternary floats
are never re-quantized). Semantics are those of the reference code; see ``docs/numerics.md``.
"""

from dataclasses import dataclass, field

import numpy as np

from .quant import ternarize

__all__ = ["ModelConfig", "BitLinear", "Layer", "Model", "default_intermediate_size", "check_tokens", "random_model"]


def default_intermediate_size(hidden_size):
    """``256 · ceil(int(8H/3) / 256)``, the reference default for the GLU width I."""
    return 256 * -(-int(hidden_size * 8 / 3) // 256)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an HGRNBit model.

    Parameters
    ----------
    vocab_size : int
        V, rows of the embedding and of the LM head.
    hidden_size : int
        H, width of the residual stream and of the MLGRU state.
    num_layers : int
        L, number of blocks.
    intermediate_size : int
        I, width of the GLU; the fused gate projection has 2I rows.
    norm_eps : float
        ε of every RMSNorm.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    intermediate_size: int
    norm_eps: float = 1e-6

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_layers", "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not (isinstance(self.norm_eps, (float, int)) and 0 < self.norm_eps < 1):
            raise ValueError(f"norm_eps must be a float in (0, 1), not {self.norm_eps!r}")

    @property
    def ternary_weights(self):
        """Number of ternary weights: 4H² + 3HI per layer, plus the V×H head."""
        h, i = self.hidden_size, self.intermediate_size
        return self.num_layers * (4 * h * h + 3 * h * i) + self.vocab_size * h

    def to_dict(self):
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "intermediate_size": self.intermediate_size, "norm_eps": self.norm_eps}

    @classmethod
    def from_dict(cls, d):
        known = {"vocab_size", "hidden_size", "num_layers", "intermediate_size", "norm_eps"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass
class BitLinear:
    """A ternary projection ``y = T · quant(RMSNorm(x) ⊙ norm) · a · β / 127``.

    Attributes
    ----------
    codes : ndarray of int8, shape (out, in)
        Trits in {-1, 0, +1}.
    beta : float
        Absmean scale β of the whole tensor.
    norm : ndarray of float32, shape (in,)
        Weight of the BitLinear's own RMSNorm.
    """

    codes: np.ndarray
    beta: float
    norm: np.ndarray

    @property
    def shape(self):
        return self.codes.shape

    @classmethod
    def from_latent(cls, weight, norm, run_dtype=np.float32):
        """Ternarize latent float weights (absmean, see :func:`mmfree.host.quant.ternarize`)."""
        codes, beta = ternarize(weight, run_dtype)
        return cls(codes, beta, np.asarray(norm, dtype=np.float32))

    def validate(self, name, out_features, in_features):
        if self.codes.shape != (out_features, in_features):
            raise ValueError(f"{name}: weight shape {self.codes.shape}, expected {(out_features, in_features)}")
        if self.codes.dtype != np.int8 or np.any(np.abs(self.codes) > 1):
            raise ValueError(f"{name}: codes must be int8 trits in {{-1, 0, +1}}")
        if not (np.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"{name}: β must be positive and finite, not {self.beta!r}")
        _check_vector(f"{name}.norm", self.norm, in_features)


@dataclass
class Layer:
    """One block: ``r = x + MLGRU(RMSNorm_attn(x))``, ``out = r + GLU(RMSNorm_mlp(r))``."""

    attn_norm: np.ndarray
    i_proj: BitLinear
    f_proj: BitLinear
    g_proj: BitLinear
    g_norm: np.ndarray
    o_proj: BitLinear
    mlp_norm: np.ndarray
    gate_proj: BitLinear
    down_proj: BitLinear

    PROJECTIONS = ("i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj")

    def validate(self, name, config):
        h, i = config.hidden_size, config.intermediate_size
        for norm in ("attn_norm", "g_norm", "mlp_norm"):
            _check_vector(f"{name}.{norm}", getattr(self, norm), h)
        for proj in ("i_proj", "f_proj", "g_proj", "o_proj"):
            getattr(self, proj).validate(f"{name}.{proj}", h, h)
        self.gate_proj.validate(f"{name}.gate_proj", 2 * i, h)
        self.down_proj.validate(f"{name}.down_proj", h, i)


@dataclass
class Model:
    """A whole HGRNBit model, ternarized.

    Attributes
    ----------
    config : ModelConfig
    embeddings : ndarray of float32, shape (V, H)
    lower_bounds : ndarray of float32, shape (L, H)
        The raw ``model.lower_bounds`` parameter; :meth:`lower_bound_values` gives the per-layer bounds.
    layers : list of Layer
    norm : ndarray of float32, shape (H,)
        Final RMSNorm weight.
    lm_head : BitLinear, shape (V, H)
    tokenizer : dict
        Tokenizer spec (see :mod:`mmfree.host.tokenizer`).
    generation : dict
        Sampling defaults the model is meant to be used with (``temperature``, ``top_k``); empty means greedy.
    """

    config: ModelConfig
    embeddings: np.ndarray
    lower_bounds: np.ndarray
    layers: list
    norm: np.ndarray
    lm_head: BitLinear
    tokenizer: dict = field(default_factory=lambda: {"type": "bytes"})
    generation: dict = field(default_factory=dict)

    def lower_bound_values(self):
        """Per-layer lower bounds ``cumsum(softmax(lb, 0)) − softmax(lb, 0)[0]``, shape (L, H), float64."""
        lb = self.lower_bounds.astype(np.float64)
        s = np.exp(lb - lb.max(axis=0))
        s /= s.sum(axis=0)
        return np.cumsum(s, axis=0) - s[0]

    def validate(self):
        """Check every shape, dtype and value; raise ``ValueError`` naming the first bad tensor."""
        c = self.config
        if self.embeddings.shape != (c.vocab_size, c.hidden_size):
            raise ValueError(f"embeddings: shape {self.embeddings.shape}, expected {(c.vocab_size, c.hidden_size)}")
        if not np.all(np.isfinite(self.embeddings)):
            raise ValueError("embeddings: contains NaN or Inf")
        if self.lower_bounds.shape != (c.num_layers, c.hidden_size):
            raise ValueError(f"lower_bounds: shape {self.lower_bounds.shape}, "
                             f"expected {(c.num_layers, c.hidden_size)}")
        if not np.all(np.isfinite(self.lower_bounds)):
            raise ValueError("lower_bounds: contains NaN or Inf")
        if len(self.layers) != c.num_layers:
            raise ValueError(f"{len(self.layers)} layers, config says {c.num_layers}")
        for index, layer in enumerate(self.layers):
            layer.validate(f"layers.{index}", c)
        _check_vector("norm", self.norm, c.hidden_size)
        self.lm_head.validate("lm_head", c.vocab_size, c.hidden_size)
        unknown = set(self.generation) - {"temperature", "top_k"}
        if unknown:
            raise ValueError(f"generation defaults: unknown keys {sorted(unknown)} (known: temperature, top_k)")
        return self


def check_tokens(tokens, vocab_size):
    """``tokens`` as a non-empty 1-D int64 array of ids in ``[0, vocab_size)``; ``ValueError`` otherwise."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) == 0:
        raise ValueError("tokens must be a non-empty 1-D sequence")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size})")
    return tokens


def _check_vector(name, value, length):
    if value.shape != (length,):
        raise ValueError(f"{name}: shape {value.shape}, expected ({length},)")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: contains NaN or Inf")


def random_model(config, seed=0, tokenizer=None):
    """A model with random latent weights, ternarized; norms near 1 and random lower bounds.

    For tests and benchmarks: the statistics resemble a trained checkpoint's (norm weights around 1, latent weights
    of std 0.02 so that β ≈ 0.016), not its function.
    """
    rng = np.random.default_rng(seed)
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bitlinear(out_features, in_features):
        return BitLinear.from_latent(0.02 * rng.standard_normal((out_features, in_features), dtype=np.float32),
                                     norm(in_features))

    layers = [Layer(attn_norm=norm(h), i_proj=bitlinear(h, h), f_proj=bitlinear(h, h), g_proj=bitlinear(h, h),
                    g_norm=norm(h), o_proj=bitlinear(h, h), mlp_norm=norm(h), gate_proj=bitlinear(2 * i, h),
                    down_proj=bitlinear(h, i))
              for _ in range(config.num_layers)]
    return Model(config=config,
                 embeddings=rng.standard_normal((v, h), dtype=np.float32),
                 lower_bounds=rng.standard_normal((config.num_layers, h)).astype(np.float32),
                 layers=layers, norm=norm(h), lm_head=bitlinear(v, h),
                 tokenizer=tokenizer if tokenizer is not None else {"type": "bytes"}).validate()
