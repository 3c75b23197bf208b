"""Quantization-aware training of small HGRNBit models in PyTorch.

The network is the float reference (:mod:`mmfree.host.reference`) with straight-through estimators on both
quantizers: the forward pass computes exactly ``(q · T) · a · β / 127`` with int8 absmax activations ``q`` and
absmean trits ``T``, the backward pass treats both quantizers as the identity. Trits are computed the way
:meth:`BitLinear.from_latent` computes them (in float32, whatever dtype the network runs in), so
:meth:`HGRNBit.export` gives a :class:`~mmfree.host.model.Model` whose float reference equals this network.

The MLGRU recurrence is evaluated in chunks: a sequential scan inside every chunk (all chunks at once), then a
sequential pass that carries the state from chunk to chunk: ``chunk + T/chunk`` small steps instead of ``T``.

Only this module (and the tests) import torch; ``mmfree train`` imports it when it runs.
"""

import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .model import BitLinear, Layer, Model
from .quant import ABSMAX_MIN, BETA_MIN
from .tokenizer import make_tokenizer

__all__ = ["HELDOUT_FRACTION", "TrainConfig", "ternarize", "rms_norm", "linear_recurrence", "TernaryLinear",
           "Block", "HGRNBit", "CharCorpus", "Trainer"]

#: the held-out split is this tail fraction of the text
HELDOUT_FRACTION = 0.1
_CHECKPOINT_FORMAT = "mmfree-train-checkpoint"
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run (the ``"train"`` section of a training config file).

    Attributes
    ----------
    seq_len, batch_size : int
        Training windows: ``batch_size`` random windows of ``seq_len`` characters per step, state reset per window.
    steps : int
        Optimizer steps of the whole run.
    lr, min_lr_ratio, warmup_steps : float, float, int
        AdamW learning rate: linear warmup to ``lr``, then cosine decay to ``lr · min_lr_ratio`` at ``steps``.
    weight_decay, beta1, beta2, grad_clip : float
        AdamW decay (latent ternary weights only), moments, and the gradient-norm clip.
    eval_every, eval_windows : int, int or None
        Held-out cross-entropy every ``eval_every`` steps over ``eval_windows`` evenly spaced held-out windows
        (None: all); the end of the run always evaluates all of them.
    checkpoint_every, log_every : int
        Steps between checkpoints, and between training-loss records (each the mean over its interval).
    seed : int
        Seeds the initialization and the batch sampler.
    bf16 : bool
        bfloat16 autocast on CUDA (ignored on the CPU); rounds the matmul outputs, so the forward is no longer
        exactly the reference's.
    scan_chunk : int
        Chunk length of the MLGRU scan.
    """

    seq_len: int = 256
    batch_size: int = 64
    steps: int = 4000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_windows: int | None = 64
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    bf16: bool = False
    scan_chunk: int = 16

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"train config: {f.name} must be true or false, not {value!r}")
            elif f.type is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or value < 0:
                    raise ValueError(f"train config: {f.name} must be a non-negative number, not {value!r}")
            elif not (value is None and f.name == "eval_windows"):
                low = 0 if f.name in ("warmup_steps", "seed") else 1
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(f"train config: {f.name} must be an integer ≥ {low}, not {value!r}")
        if not (self.lr > 0 and self.min_lr_ratio <= 1 and self.beta1 < 1 and self.beta2 < 1):
            raise ValueError("train config: need lr > 0, min_lr_ratio ≤ 1, beta1 < 1 and beta2 < 1")

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown train config keys: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**d)

    def to_dict(self):
        return asdict(self)


# -- the network ------------------------------------------------------------------------------------------------


@torch.no_grad()
def ternarize(weight):
    """Absmean trits and β of a latent weight, as :func:`mmfree.host.quant.ternarize` with float32.

    Returns
    -------
    codes : Tensor, float32, same shape
        Trits in {-1, 0, +1}.
    beta : Tensor, float32, 0-d
    """
    w = weight.detach().float()
    beta = w.abs().mean(dtype=torch.float64).float().clamp_min(BETA_MIN)
    codes = torch.round(w * (1.0 / beta)).clamp(-1, 1)
    return codes, beta


def rms_norm(x, weight, eps):
    """``x / sqrt(mean(x²) + eps) ⊙ weight`` over the last axis, written as the reference writes it."""
    return x / torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps) * weight


def linear_recurrence(f, i, h0=None, chunk=16):
    """``h_t = f_t ⊙ h_{t−1} + i_t`` along axis 1, differentiable.

    Parameters
    ----------
    f, i : Tensor, shape (B, T, H)
    h0 : Tensor, shape (B, H), optional
        State before the first step (zeros when omitted).
    chunk : int
        Steps per chunk (see the module docstring).

    Returns
    -------
    h : Tensor, shape (B, T, H)
    last : Tensor, shape (B, H)
        ``h`` after the last step.
    """
    batch, length, width = f.shape
    count = -(-length // chunk)
    pad = count * chunk - length
    if pad:  # f = 1, i = 0 leaves the state as it is
        f = F.pad(f, (0, 0, 0, pad), value=1.0)
        i = F.pad(i, (0, 0, 0, pad))
    f = f.reshape(batch, count, chunk, width)
    i = i.reshape(batch, count, chunk, width)
    local, decay = [], []  # scan of every chunk from a zero state, and the product of its f
    h, p = torch.zeros_like(i[:, :, 0]), torch.ones_like(f[:, :, 0])
    for t in range(chunk):
        h = f[:, :, t] * h + i[:, :, t]
        p = p * f[:, :, t]
        local.append(h)
        decay.append(p)
    local, decay = torch.stack(local, 2), torch.stack(decay, 2)
    carry = torch.zeros_like(local[:, 0, 0]) if h0 is None else h0
    starts = []
    for k in range(count):
        starts.append(carry)
        carry = local[:, k, -1] + decay[:, k, -1] * carry
    h = local + decay * torch.stack(starts, 1).unsqueeze(2)
    return h.reshape(batch, count * chunk, width)[:, :length], carry


class TernaryLinear(nn.Module):
    """A BitLinear with straight-through estimators: ``(q · T) · a · β / 127`` in the forward pass.

    Parameters
    ----------
    in_features, out_features : int
    eps : float
        ε of the projection's own RMSNorm.
    """

    def __init__(self, in_features, out_features, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = nn.Parameter(torch.ones(in_features))

    def forward(self, x):
        x = rms_norm(x, self.norm, self.eps)
        a = x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(ABSMAX_MIN)
        xs = x * (127.0 / a)
        q = (torch.sign(xs) * torch.floor(xs.abs() + 0.5)).clamp(-128, 127)  # half away from zero
        codes, beta = ternarize(self.weight)
        beta = beta.to(self.weight.dtype)
        ws = self.weight * (1.0 / beta)
        # x + (round(x) − x).detach() is exactly round(x) here (the difference is exact), so the matmul sees
        # integers: exact in bf16 and TF32 too
        y = F.linear(xs + (q - xs).detach(), ws + (codes.to(ws.dtype) - ws).detach())
        return y * (a * (beta / 127.0))

    def export(self):
        """The projection as a :class:`~mmfree.host.model.BitLinear` (trits and β from the float32 latent)."""
        return BitLinear.from_latent(_numpy(self.weight), _numpy(self.norm))


class Block(nn.Module):
    """One layer: ``r = x + MLGRU(RMSNorm_attn(x))``, ``out = r + GLU(RMSNorm_mlp(r))``."""

    def __init__(self, config, scan_chunk):
        super().__init__()
        h, n, eps = config.hidden_size, config.intermediate_size, config.norm_eps
        self.eps, self.scan_chunk = eps, scan_chunk
        self.attn_norm = nn.Parameter(torch.ones(h))
        self.i_proj, self.f_proj, self.g_proj = (TernaryLinear(h, h, eps) for _ in range(3))
        self.g_norm = nn.Parameter(torch.ones(h))
        self.o_proj = TernaryLinear(h, h, eps)
        self.mlp_norm = nn.Parameter(torch.ones(h))
        self.gate_proj = TernaryLinear(h, 2 * n, eps)
        self.down_proj = TernaryLinear(n, h, eps)

    def forward(self, x, lower_bound, state=None):
        """Returns the block's output (B, T, H) and the MLGRU state after the last token (B, H)."""
        xa = rms_norm(x, self.attn_norm, self.eps)
        f = lower_bound + (1 - lower_bound) * torch.sigmoid(self.f_proj(xa))
        i = F.silu(self.i_proj(xa)) * (1 - f)
        h, state = linear_recurrence(f, i, state, self.scan_chunk)
        x = x + self.o_proj(rms_norm(self.g_proj(xa), self.g_norm, self.eps) * F.silu(h))
        gate, up = self.gate_proj(rms_norm(x, self.mlp_norm, self.eps)).chunk(2, dim=-1)
        return x + self.down_proj(F.silu(gate) * up), state

    def export(self):
        return Layer(attn_norm=_numpy(self.attn_norm), g_norm=_numpy(self.g_norm), mlp_norm=_numpy(self.mlp_norm),
                     **{name: getattr(self, name).export() for name in Layer.PROJECTIONS})


class HGRNBit(nn.Module):
    """The whole network: full-precision embedding, L blocks, final RMSNorm, ternary LM head.

    Parameters
    ----------
    config : ModelConfig
    scan_chunk : int
        Chunk length of the MLGRU scan (:func:`linear_recurrence`).
    """

    def __init__(self, config, scan_chunk=16):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.embeddings = nn.Parameter(torch.empty(config.vocab_size, h))
        self.lower_bounds = nn.Parameter(torch.zeros(config.num_layers, h))
        self.layers = nn.ModuleList(Block(config, scan_chunk) for _ in range(config.num_layers))
        self.norm = nn.Parameter(torch.ones(h))
        self.lm_head = TernaryLinear(h, config.vocab_size, config.norm_eps)

    @torch.no_grad()
    def reset_parameters(self, generator, weight_std=0.02):
        """Embeddings N(0, 1), latent ternary weights N(0, ``weight_std``²), norms 1, lower bounds 0."""
        for name, p in self.named_parameters():
            if name == "embeddings":
                p.normal_(0.0, 1.0, generator=generator)
            elif name.endswith(".weight"):
                p.normal_(0.0, weight_std, generator=generator)
            elif name == "lower_bounds":
                p.zero_()
            else:
                p.fill_(1.0)

    def lower_bound_values(self):
        """``cumsum(softmax(lb, 0)) − softmax(lb, 0)[0]``: the forget-gate floor of each layer, shape (L, H)."""
        s = torch.softmax(self.lower_bounds, dim=0)
        return torch.cumsum(s, dim=0) - s[0]

    def forward(self, tokens, state=None):
        """Teacher-forced forward pass.

        Parameters
        ----------
        tokens : LongTensor, shape (B, T)
        state : Tensor, shape (L, B, H), optional
            MLGRU states before the first token (zeros when omitted).

        Returns
        -------
        logits : Tensor, shape (B, T, V)
        state : Tensor, shape (L, B, H)
        """
        x = F.embedding(tokens, self.embeddings)
        lower_bounds = self.lower_bound_values()
        states = []
        for index, layer in enumerate(self.layers):
            x, h = layer(x, lower_bounds[index], None if state is None else state[index])
            states.append(h)
        logits = self.lm_head(rms_norm(x, self.norm, self.config.norm_eps))
        return logits, torch.stack(states)

    def export(self, tokenizer):
        """The trained network as a validated :class:`~mmfree.host.model.Model` (float32, ternarized).

        Parameters
        ----------
        tokenizer : dict
            Tokenizer spec stored with the model.
        """
        return Model(config=self.config, embeddings=_numpy(self.embeddings),
                     lower_bounds=_numpy(self.lower_bounds), layers=[layer.export() for layer in self.layers],
                     norm=_numpy(self.norm), lm_head=self.lm_head.export(), tokenizer=dict(tokenizer),
                     # small char models loop under greedy decoding; sampling is their sensible default
                     generation={"temperature": 0.8}).validate()


def _numpy(parameter):
    return parameter.detach().cpu().float().numpy().copy()


# -- data -------------------------------------------------------------------------------------------------------


class CharCorpus:
    """A text as character tokens over its own alphabet, split into a training head and a held-out tail.

    Parameters
    ----------
    text : str
    heldout_fraction : float
        The last ``heldout_fraction`` of the characters are held out.

    Attributes
    ----------
    tokenizer : dict
        ``{"type": "chars", "alphabet": <the sorted distinct characters>}``.
    train, heldout : LongTensor, 1-D
    heldout_start : int
        Index of the first held-out character in ``text``.
    sha256 : str
        Digest of the UTF-8 text.
    """

    def __init__(self, text, heldout_fraction=HELDOUT_FRACTION):
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must lie in (0, 1), not {heldout_fraction!r}")
        self.tokenizer = {"type": "chars", "alphabet": "".join(sorted(set(text)))}
        ids = torch.tensor(make_tokenizer(self.tokenizer).encode(text), dtype=torch.long)
        self.heldout_start = len(text) - int(round(len(text) * heldout_fraction))
        self.train, self.heldout = ids[:self.heldout_start], ids[self.heldout_start:]
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def vocab_size(self):
        return len(self.tokenizer["alphabet"])

    def heldout_windows(self, seq_len, count=None):
        """Start offsets of non-overlapping held-out windows of ``seq_len + 1`` characters.

        ``count`` evenly spaced ones, or all when None.
        """
        total = (len(self.heldout) - 1) // seq_len
        if total < 1:
            raise ValueError(f"the held-out text ({len(self.heldout)} characters) is shorter than one window "
                             f"of {seq_len + 1}")
        chosen = np.arange(total) if count is None or count >= total else \
            np.linspace(0, total - 1, count).round().astype(np.int64)
        return chosen * seq_len


# -- training ---------------------------------------------------------------------------------------------------


class Trainer:
    """Training state and loop: network, AdamW, step counter, batch sampler, history.

    Parameters
    ----------
    model_config : ModelConfig
        Its ``vocab_size`` must equal the corpus alphabet's size.
    config : TrainConfig
    corpus : CharCorpus
    device : str or torch.device
    dtype : torch.dtype
        Parameter dtype (float32 for training; float64 for strict numerical checks).

    Everything a run depends on is in :meth:`state_dict`, so a run resumed from a checkpoint continues exactly as
    the uninterrupted run would (bit for bit on the CPU).
    """

    def __init__(self, model_config, config, corpus, device="cpu", dtype=torch.float32):
        if model_config.vocab_size != corpus.vocab_size:
            raise ValueError(f"model vocab_size {model_config.vocab_size} != the corpus' "
                             f"{corpus.vocab_size} distinct characters")
        if len(corpus.train) <= config.seq_len:
            raise ValueError(f"the training text ({len(corpus.train)} characters) is shorter than one window "
                             f"of {config.seq_len + 1}")
        self.model_config, self.config, self.corpus = model_config, config, corpus
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.model = HGRNBit(model_config, config.scan_chunk)
        self.model.reset_parameters(self.generator)
        self.model.to(self.device, dtype)
        decay = [p for name, p in self.model.named_parameters() if name.endswith(".weight")]
        other = [p for name, p in self.model.named_parameters() if not name.endswith(".weight")]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                            {"params": other, "weight_decay": 0.0}],
                                           lr=config.lr, betas=(config.beta1, config.beta2))
        self.step = 0
        self.elapsed = 0.0
        self.history = {"train": [], "heldout": []}  # [step, loss] pairs
        self._train_ids = corpus.train.to(self.device)
        self._heldout_ids = corpus.heldout.to(self.device)

    def learning_rate(self, step):
        """Linear warmup over ``warmup_steps``, then cosine decay to ``lr · min_lr_ratio`` at ``steps``."""
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        progress = min(1.0, (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps))
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.bf16 and self.device.type == "cuda")

    def _loss(self, inputs, targets):
        with self._autocast():
            logits, _ = self.model(inputs)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def train_step(self):
        """One optimizer step on a random batch; returns the loss as a 0-d tensor (not synchronized)."""
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        starts = torch.randint(0, len(self.corpus.train) - c.seq_len, (c.batch_size,), generator=self.generator)
        index = starts.to(self.device)[:, None] + torch.arange(c.seq_len + 1, device=self.device)
        windows = self._train_ids[index]
        self.model.train()
        loss = self._loss(windows[:, :-1], windows[:, 1:])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, count=None):
        """Mean held-out cross-entropy (nats/char) over ``count`` evenly spaced windows (all when None).

        Every window starts from a zero state, as in training.
        """
        c = self.config
        starts = torch.as_tensor(self.corpus.heldout_windows(c.seq_len, count), device=self.device)
        self.model.eval()
        total, n = 0.0, 0
        for batch in starts.split(c.batch_size):
            windows = self._heldout_ids[batch[:, None] + torch.arange(c.seq_len + 1, device=self.device)]
            total += self._loss(windows[:, :-1], windows[:, 1:]).item() * windows[:, 1:].numel()
            n += windows[:, 1:].numel()
        return total / n

    def run(self, checkpoint=None, progress=True):
        """Train up to ``config.steps``, evaluating, logging and checkpointing on the way.

        Parameters
        ----------
        checkpoint : path, optional
            Where to save checkpoints (every ``checkpoint_every`` steps and at the end).
        progress : bool
            Show a tqdm progress bar with the training and held-out loss.

        Returns
        -------
        float
            Held-out cross-entropy over all held-out windows at the end.
        """
        c = self.config
        pending = []
        start = time.perf_counter()
        with tqdm(total=c.steps, initial=self.step, desc="train", unit="step", disable=not progress,
                  dynamic_ncols=True) as bar:
            while self.step < c.steps:
                pending.append(self.train_step())
                if self.step % c.log_every == 0 or self.step == c.steps:
                    loss = torch.stack(pending).mean().item()
                    if not math.isfinite(loss):
                        raise ValueError(f"training diverged at step {self.step} (loss {loss})")
                    self.history["train"].append([self.step, loss])
                    bar.update(len(pending))
                    pending = []
                    bar.set_postfix_str(self._postfix())
                if self.step % c.eval_every == 0 and self.step < c.steps:
                    self.history["heldout"].append([self.step, self.evaluate(c.eval_windows)])
                    bar.set_postfix_str(self._postfix())
                if checkpoint is not None and self.step % c.checkpoint_every == 0 and self.step < c.steps:
                    self.elapsed += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save_checkpoint(checkpoint)
            final = self.evaluate()
            if not self.history["heldout"] or self.history["heldout"][-1][0] != self.step:
                self.history["heldout"].append([self.step, final])
            bar.set_postfix_str(self._postfix())
        self.elapsed += time.perf_counter() - start
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return final

    def _postfix(self):
        parts = []
        if self.history["train"]:
            parts.append(f"loss {self.history['train'][-1][1]:.3f}")
        if self.history["heldout"]:
            parts.append(f"held-out {self.history['heldout'][-1][1]:.3f} @{self.history['heldout'][-1][0]}")
        return ", ".join(parts)

    # -- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self):
        return {"format": _CHECKPOINT_FORMAT, "version": _CHECKPOINT_VERSION,
                "model_config": self.model_config.to_dict(), "train_config": self.config.to_dict(),
                "data_sha256": self.corpus.sha256, "step": self.step, "elapsed": self.elapsed,
                "history": self.history, "generator": self.generator.get_state(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def save_checkpoint(self, path):
        """Write :meth:`state_dict` to ``path`` atomically."""
        tmp = f"{os.fspath(path)}.tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path):
        """Continue from a checkpoint of a run with the same model, data and hyperparameters (``steps`` aside).

        Raises
        ------
        ValueError
            Not a checkpoint, or one of a different run (naming what differs).
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises pickle and zip errors of several types
            raise ValueError(f"{path}: not a training checkpoint ({e})") from None
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not an {_CHECKPOINT_FORMAT}")
        if state.get("version") != _CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint version {state.get('version')!r} is not supported")
        if state["model_config"] != self.model_config.to_dict():
            raise ValueError(f"{path}: checkpoint model {state['model_config']} differs from "
                             f"{self.model_config.to_dict()}")
        ours = {k: v for k, v in self.config.to_dict().items() if k != "steps"}
        theirs = {k: v for k, v in state["train_config"].items() if k != "steps"}
        if ours != theirs:
            differ = sorted(k for k in ours if ours[k] != theirs.get(k))
            raise ValueError(f"{path}: checkpoint was trained with different {differ}")
        if state["data_sha256"] != self.corpus.sha256:
            raise ValueError(f"{path}: checkpoint was trained on different data")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step, self.elapsed, self.history = state["step"], state["elapsed"], state["history"]
