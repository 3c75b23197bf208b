"""Tokenizers built from a JSON-able spec dict, with streaming decode for generation.

Spec types:

- ``{"type": "bytes"}``: token id = UTF-8 byte (0..255); the model's vocabulary must have at least 256 rows.
- ``{"type": "chars", "alphabet": "...", "unknown": "?"}``: token id = index of the character in ``alphabet``
  (no repeats). Characters outside the alphabet map to the ``unknown`` character when the spec names one (it must
  be in the alphabet); otherwise :meth:`encode` raises ``ValueError`` listing them.
- ``{"type": "hf", "json": "<tokenizer.json text>"}``: a Hugging Face ``tokenizers`` tokenizer (e.g. the Mistral
  SentencePiece BPE of the MMfreeLM checkpoints).

Every spec may carry ``bos_token_id`` and ``eos_token_id`` (int or None): :meth:`Tokenizer.encode` starts with
``bos_token_id`` when it is set; ``eos_token_id`` tells generation where to stop. Decoding skips ids the tokenizer
has no text for (special tokens, unused rows of a larger LM head); negative ids raise ``ValueError``.
"""

__all__ = ["Tokenizer", "StreamDecoder", "make_tokenizer"]


class Tokenizer:
    """Base class: text ↔ token ids.

    Attributes
    ----------
    spec : dict
        The spec this tokenizer was made from (``make_tokenizer(tok.spec)`` makes an equal tokenizer).
    vocab_size : int
        Number of ids this tokenizer can produce.
    bos_token_id, eos_token_id : int or None
    """

    def __init__(self, spec):
        self.bos_token_id = _optional_id(spec, "bos_token_id")
        self.eos_token_id = _optional_id(spec, "eos_token_id")
        self._spec = dict(spec)

    @property
    def spec(self):
        return dict(self._spec)

    def encode(self, text):
        """Token ids (list of int) of ``text``, after ``bos_token_id`` when it is set."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, not {type(text).__name__}")
        bos = [] if self.bos_token_id is None else [self.bos_token_id]
        return bos + self._encode(text)

    def decode(self, ids):
        """The text of a sequence of token ids."""
        ids = [_check_id(i) for i in ids]
        return self._decode(ids)

    def stream_decoder(self):
        """A :class:`StreamDecoder` for text generated one token at a time."""
        return StreamDecoder(self)

    def _encode(self, text):
        raise NotImplementedError

    def _decode(self, ids):
        raise NotImplementedError


class StreamDecoder:
    """Incremental decoding: ``push(id)`` returns the text that id completes, ``finish()`` the rest.

    The concatenation of every ``push`` and the final ``finish`` equals ``tokenizer.decode(ids)``. Text is held
    back while it ends in an incomplete UTF-8 sequence (a trailing U+FFFD), and each new token is decoded together
    with the tokens since the last emitted text, so context-dependent decoders (SentencePiece "▁" spaces, byte
    fallback) come out as in a full decode, at a cost independent of the sequence length.
    """

    def __init__(self, tokenizer):
        self._decode = tokenizer._decode
        self._ids = []  # the window: tokens of the last emitted text, then those not yet emitted
        self._read = 0  # how many tokens of the window have been emitted

    def push(self, token_id):
        """Add one token; return the newly completed text (possibly empty)."""
        self._ids.append(_check_id(token_id))
        done = self._decode(self._ids[:self._read])
        text = self._decode(self._ids)
        if len(text) > len(done) and not text.endswith("\ufffd"):
            self._ids = self._ids[self._read:]
            self._read = len(self._ids)
            return text[len(done):]
        return ""

    def finish(self):
        """Return the text held back (an incomplete sequence decodes to U+FFFD) and reset the decoder."""
        done = self._decode(self._ids[:self._read])
        text = self._decode(self._ids)
        self._ids, self._read = [], 0
        return text[len(done):]


class BytesTokenizer(Tokenizer):
    """UTF-8 bytes as tokens; invalid UTF-8 decodes to U+FFFD. Ids ≥ 256 have no text."""

    vocab_size = 256

    def _encode(self, text):
        return list(text.encode("utf-8"))

    def _decode(self, ids):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class CharsTokenizer(Tokenizer):
    """One token per character of ``spec["alphabet"]``; see the module docstring for unknown characters."""

    def __init__(self, spec):
        super().__init__(spec)
        alphabet = spec.get("alphabet")
        if not isinstance(alphabet, str) or not alphabet:
            raise ValueError("chars tokenizer spec needs a non-empty 'alphabet' string")
        repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
        if repeated:
            raise ValueError(f"chars tokenizer alphabet repeats {repeated}")
        self._alphabet = alphabet
        self._index = {c: i for i, c in enumerate(alphabet)}
        unknown = spec.get("unknown")
        if unknown is not None and unknown not in self._index:
            raise ValueError(f"chars tokenizer 'unknown' character {unknown!r} is not in the alphabet")
        self._unknown = None if unknown is None else self._index[unknown]
        self.vocab_size = len(alphabet)

    def _encode(self, text):
        if self._unknown is None:
            missing = sorted({c for c in text if c not in self._index})
            if missing:
                raise ValueError(f"characters not in the tokenizer's alphabet: {missing}")
        return [self._index.get(c, self._unknown) for c in text]

    def _decode(self, ids):
        return "".join(self._alphabet[i] for i in ids if i < len(self._alphabet))


class HFTokenizer(Tokenizer):
    """A ``tokenizers`` tokenizer from its JSON; special tokens are skipped when decoding."""

    def __init__(self, spec):
        super().__init__(spec)
        from tokenizers import Tokenizer as Backend

        text = spec.get("json")
        if not isinstance(text, str):
            raise ValueError("hf tokenizer spec needs the tokenizer.json text under 'json'")
        try:
            self._backend = Backend.from_str(text)
        except Exception as e:  # tokenizers raises its own exception type for malformed JSON
            raise ValueError(f"hf tokenizer spec: tokenizer.json does not load ({e})") from None
        self.vocab_size = self._backend.get_vocab_size(with_added_tokens=True)

    def _encode(self, text):
        return self._backend.encode(text, add_special_tokens=False).ids

    def _decode(self, ids):
        return self._backend.decode(ids, skip_special_tokens=True)


_TYPES = {"bytes": (BytesTokenizer, set()), "chars": (CharsTokenizer, {"alphabet", "unknown"}),
          "hf": (HFTokenizer, {"json"})}


def make_tokenizer(spec):
    """Build a :class:`Tokenizer` from a spec dict (see the module docstring)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"tokenizer spec must be a dict with a 'type', not {spec!r:.200}")
    if spec["type"] not in _TYPES:
        raise ValueError(f"unknown tokenizer type {spec['type']!r} (known: {', '.join(_TYPES)})")
    cls, keys = _TYPES[spec["type"]]
    unknown = set(spec) - keys - {"type", "bos_token_id", "eos_token_id"}
    if unknown:
        raise ValueError(f"{spec['type']} tokenizer spec: unknown keys {sorted(unknown)}")
    return cls(spec)


def _optional_id(spec, key):
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"tokenizer spec: {key} must be a non-negative int or None, not {value!r}")
    return value


def _check_id(token_id):
    if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
        raise ValueError(f"token id must be an integer, not {token_id!r}")
    token_id = int(token_id)
    if token_id < 0:
        raise ValueError(f"token id must be non-negative, not {token_id}")
    return token_id
