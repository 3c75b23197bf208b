"""The two quantizers of a BitLinear, in the reference code's float form.

``ternarize`` is absmean weight ternarization (done once, on import or export); ``quantize_activations`` is the
per-token int8 absmax quantization the float reference applies in every BitLinear.
"""

import numpy as np

__all__ = ["BETA_MIN", "ABSMAX_MIN", "round_half_away", "ternarize", "quantize_activations"]

#: lower clamp of the absmean weight scale β
BETA_MIN = 1e-5
#: lower clamp of the per-token activation absmax
ABSMAX_MIN = 1e-5


def round_half_away(x):
    """Round to nearest, ties away from zero (the reference's activation rounding)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def ternarize(weight, run_dtype=np.float32):
    """Absmean ternarization of one weight tensor.

    Parameters
    ----------
    weight : array_like of float, any shape
        Latent (full-precision) weights.
    run_dtype : numpy dtype
        The dtype the reference would run in: ``β = max(mean|W|, 1e-5)`` is rounded to it, and
        ``round(W · (1/β))`` is evaluated in it (ties to even, as ``torch.round``). ``np.float16`` emulates an fp16
        run; ``np.float32`` is the import default.

    Returns
    -------
    codes : ndarray of int8, same shape
        Trits in {-1, 0, +1}.
    beta : float
        The scale β (as a Python float, exactly representable in ``run_dtype``).
    """
    w = np.asarray(weight).astype(run_dtype)
    if not np.all(np.isfinite(w)):
        raise ValueError("weight tensor contains NaN or Inf")
    mean = np.mean(np.abs(w), dtype=np.float64)
    beta = run_dtype(max(run_dtype(mean), run_dtype(BETA_MIN)))
    scale = run_dtype(1) / beta
    codes = np.clip(np.round(w * scale), -1, 1).astype(np.int8)
    return codes, float(beta)


def quantize_activations(x):
    """Per-row int8 absmax quantization, as the reference's ``activation_quant``.

    Parameters
    ----------
    x : ndarray of float, shape (..., n)

    Returns
    -------
    q : ndarray of float, shape (..., n)
        Integer values in [-128, 127] (kept as float for the matmul).
    a : ndarray of float, shape (..., 1)
        ``max(max|x|, 1e-5)``; the dequantized value is ``q · a / 127``.
    """
    a = np.maximum(np.max(np.abs(x), axis=-1, keepdims=True), ABSMAX_MIN)
    q = np.clip(round_half_away(x * (127.0 / a)), -128, 127)
    return q, a
