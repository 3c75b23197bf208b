import json

import pytest
from tokenizers import Tokenizer as HFBackend
from tokenizers import decoders, models, pre_tokenizers, trainers

from mmfree.host.tokenizer import make_tokenizer

CORPUS = ["First Citizen: Before we proceed any further, hear me speak.",
          "All: Speak, speak.", "First Citizen: You are all resolved rather to die than to famish?",
          "the quick brown fox jumps over the lazy dog", "hello world, hello there"] * 5
TEXTS = ["hello world", "  leading and  double  spaces ", "Speak, speak! famish?", "naïve café ☃ 𝄞 日本語",
         "line\nbreaks\tand tabs", "", "x"]


def stream(tokenizer, ids):
    decoder = tokenizer.stream_decoder()
    pieces = [decoder.push(i) for i in ids]
    return pieces, decoder.finish()


def sentencepiece_json():
    """A Mistral-like tokenizer: Metaspace "▁" words, BPE, byte fallback tokens <0x00>..<0xFF> as normal tokens."""
    trained = HFBackend(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trained.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"]))
    model = json.loads(trained.to_str())["model"]
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {token: index for index, token in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)])}
    for token in sorted(model["vocab"], key=model["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = HFBackend(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(specials)
    return tok.to_str()


def bytelevel_json():
    """A GPT-2-like byte-level BPE: multi-byte characters split across tokens."""
    tok = HFBackend(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok.to_str()


@pytest.fixture(scope="module")
def sp_spec():
    return {"type": "hf", "json": sentencepiece_json(), "bos_token_id": 1, "eos_token_id": 2}


@pytest.fixture(scope="module")
def bytelevel_spec():
    return {"type": "hf", "json": bytelevel_json(), "eos_token_id": 0}


# -- bytes ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", TEXTS)
def test_bytes_round_trip(text):
    tok = make_tokenizer({"type": "bytes"})
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8")) and tok.decode(ids) == text
    assert tok.vocab_size == 256


@pytest.mark.parametrize("text", TEXTS)
def test_bytes_stream_one_token_at_a_time(text):
    tok = make_tokenizer({"type": "bytes"})
    pieces, rest = stream(tok, tok.encode(text))
    assert "".join(pieces) == text and rest == ""
    assert "\ufffd" not in "".join(pieces)


def test_bytes_stream_emits_a_character_when_complete():
    tok = make_tokenizer({"type": "bytes"})
    snowman = list("☃".encode())
    pieces, _ = stream(tok, [ord("a")] + snowman + [ord("b")])
    assert pieces == ["a", "", "", "☃", "b"]


def test_bytes_invalid_utf8_and_dangling_sequence():
    tok = make_tokenizer({"type": "bytes"})
    assert tok.decode([0xFF, 0x41]) == "\ufffdA"
    pieces, rest = stream(tok, [0xFF, 0x41, 0xE2, 0x98])
    assert "".join(pieces) + rest == tok.decode([0xFF, 0x41, 0xE2, 0x98]) == "\ufffdA\ufffd"


def test_bytes_special_ids_bos_and_errors():
    tok = make_tokenizer({"type": "bytes", "bos_token_id": 256, "eos_token_id": 257})
    assert tok.encode("hi") == [256, 104, 105]
    assert tok.decode([256, 104, 105, 257, 300]) == "hi"
    assert (tok.bos_token_id, tok.eos_token_id) == (256, 257)
    with pytest.raises(ValueError, match="non-negative"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="integer"):
        tok.stream_decoder().push("a")
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


# -- chars ----------------------------------------------------------------------------------------------------------

ALPHABET = "\n !,.:?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_chars_round_trip_and_stream():
    tok = make_tokenizer({"type": "chars", "alphabet": ALPHABET})
    text = "First Citizen:\nBefore we proceed, hear me speak!"
    ids = tok.encode(text)
    assert ids == [ALPHABET.index(c) for c in text] and tok.vocab_size == len(ALPHABET)
    assert tok.decode(ids) == text
    pieces, rest = stream(tok, ids)
    assert pieces == list(text) and rest == ""
    assert tok.decode([len(ALPHABET), 0]) == "\n"


def test_chars_unknown_characters():
    strict = make_tokenizer({"type": "chars", "alphabet": ALPHABET})
    with pytest.raises(ValueError, match=r"not in the tokenizer's alphabet: \['é', '☃'\]"):
        strict.encode("café ☃ é")
    lenient = make_tokenizer({"type": "chars", "alphabet": ALPHABET, "unknown": "?"})
    assert lenient.decode(lenient.encode("café ☃")) == "caf? ?"


@pytest.mark.parametrize("spec, message", [
    ({"type": "chars"}, "alphabet"),
    ({"type": "chars", "alphabet": ""}, "alphabet"),
    ({"type": "chars", "alphabet": "abca"}, r"repeats \['a'\]"),
    ({"type": "chars", "alphabet": "abc", "unknown": "?"}, "'unknown' character '\\?' is not in the alphabet"),
    ({"type": "chars", "alphabet": "abc", "alphabett": "x"}, r"unknown keys \['alphabett'\]"),
    ({"type": "words"}, "unknown tokenizer type 'words'"),
    ({"alphabet": "abc"}, "'type'"),
    ({"type": "bytes", "bos_token_id": -1}, "bos_token_id"),
    ({"type": "bytes", "eos_token_id": "2"}, "eos_token_id"),
    ({"type": "hf"}, "'json'"),
    ({"type": "hf", "json": "{not json"}, "does not load"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        make_tokenizer(spec)


# -- hf -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", TEXTS)
def test_hf_sentencepiece_round_trip(sp_spec, text):
    tok = make_tokenizer(sp_spec)
    ids = tok.encode(text)
    assert ids[0] == 1 and 1 not in ids[1:]
    expected = text.lstrip(" ") if not text.startswith("  ") else text[1:]  # the decoder strips one leading space
    assert tok.decode(ids) == expected


def test_hf_byte_fallback_is_used(sp_spec):
    tok = make_tokenizer(sp_spec)
    ids = tok.encode("☃")
    assert ids[-3:] == [3 + b for b in "☃".encode()]  # the tokens <0xE2> <0x98> <0x83>
    assert tok.decode(ids) == "☃"


@pytest.mark.parametrize("which", ["sp_spec", "bytelevel_spec"])
@pytest.mark.parametrize("text", TEXTS)
def test_hf_stream_equals_full_decode(request, which, text):
    tok = make_tokenizer(request.getfixturevalue(which))
    ids = tok.encode(text) + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
    pieces, rest = stream(tok, ids)
    assert "".join(pieces) + rest == tok.decode(ids)
    assert rest == ""
    assert "\ufffd" not in "".join(pieces)


def test_hf_stream_is_incremental_and_keeps_spaces(sp_spec):
    tok = make_tokenizer(sp_spec)
    ids = tok.encode("hello world hello there")
    pieces, _ = stream(tok, ids)
    assert sum(1 for p in pieces if p) >= 4
    assert "".join(pieces) == "hello world hello there"
    assert any(p.startswith(" ") for p in pieces)


def test_hf_stream_holds_back_partial_bytes(bytelevel_spec):
    tok = make_tokenizer(bytelevel_spec)
    ids = tok.encode("☃")
    assert len(ids) > 1
    pieces, rest = stream(tok, ids[:-1])
    assert pieces == [""] * (len(ids) - 1) and rest == "\ufffd"


def test_hf_spec_round_trips_and_vocab(sp_spec):
    tok = make_tokenizer(sp_spec)
    again = make_tokenizer(json.loads(json.dumps(tok.spec)))
    assert again.encode("hear me speak") == tok.encode("hear me speak")
    assert tok.vocab_size == HFBackend.from_str(sp_spec["json"]).get_vocab_size(with_added_tokens=True)
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    assert tok.decode([1, 2, 10_000_000]) == ""
