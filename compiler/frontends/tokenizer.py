"""Tokenizers for `--prompt` text, built with Hugging Face's `tokenizers` library.

From a GGUF's metadata (`tokenizer.ggml.*`): `gpt2` vocabularies are byte-level BPE (tokens, merges,
and the pre-tokenizer llama.cpp names in `tokenizer.ggml.pre`); `llama` vocabularies are
SentencePiece BPE (tokens with scores, merges derived from the scores as transformers' converter
does, byte fallback). Next to a Hugging Face config.json: its `tokenizer.json`. A bundle stores the
tokenizer as `tokenizer.json` (`Tokenizer.to_str()`).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from pimc.errors import ModelError

CONTROL, USER_DEFINED, BYTE = 3, 4, 6
"""llama.cpp token types (tokenizer.ggml.token_type) that are not ordinary vocabulary pieces."""

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level(split: str | None = None, digits: bool = False) -> pre_tokenizers.PreTokenizer:
    steps = []
    if digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if split is not None:
        steps.append(pre_tokenizers.Split(Regex(split), behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None))
    return steps[0] if len(steps) == 1 else pre_tokenizers.Sequence(steps)


PRE_TOKENIZERS = {
    "gpt-2": lambda: _byte_level(),
    "default": lambda: _byte_level(),
    "smollm": lambda: _byte_level(digits=True),
    "llama-bpe": lambda: _byte_level(_LLAMA3_SPLIT),
    "llama3": lambda: _byte_level(_LLAMA3_SPLIT),
    "qwen2": lambda: _byte_level(_QWEN2_SPLIT),
}
"""llama.cpp's `tokenizer.ggml.pre` names → the pre-tokenizer (split regex) each one means."""


def folder_tokenizer(folder: Path) -> Tokenizer | None:
    """The `tokenizer.json` next to a Hugging Face config.json, if there is one."""
    file = folder / "tokenizer.json"
    if not file.is_file():
        return None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises its own exception type for malformed files
        raise ModelError(f"{file}: cannot read tokenizer ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def gguf_tokenizer(metadata: dict, where: str) -> Tokenizer | None:
    """The tokenizer a GGUF's metadata describes, or None when it has no `tokenizer.ggml.model`."""
    kind = metadata.get("tokenizer.ggml.model")
    if kind is None:
        return None
    tokens = _strings(metadata, "tokenizer.ggml.tokens", where)
    types = metadata.get("tokenizer.ggml.token_type", [1] * len(tokens))
    if not isinstance(types, list) or len(types) != len(tokens):
        raise ModelError(f"{where}: tokenizer.ggml.token_type does not match the {len(tokens)} tokens")
    if kind == "gpt2":
        tok = _gpt2(metadata, tokens, where)
    elif kind == "llama":
        tok = _sentencepiece(metadata, tokens, types, where)
    else:
        raise ModelError(f"{where}: tokenizer model '{kind}' is not supported (gpt2, llama)")
    special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == CONTROL]
    tok.add_special_tokens(special)
    tok.add_tokens([AddedToken(t, normalized=False) for t, ty in zip(tokens, types) if ty == USER_DEFINED])
    bos = metadata.get("tokenizer.ggml.bos_token_id")
    if metadata.get("tokenizer.ggml.add_bos_token", kind == "llama") and isinstance(bos, int) and 0 <= bos < len(tokens):
        tok.post_processor = processors.TemplateProcessing(single=f"{tokens[bos]} $A", special_tokens=[(tokens[bos], bos)])
    return tok


def _strings(metadata: dict, key: str, where: str) -> list[str]:
    value = metadata.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{where}: GGUF tokenizer needs '{key}' as a list of strings")
    return value


def _vocab(tokens: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)  # a repeated piece keeps its first id
    return vocab


def _gpt2(metadata: dict, tokens: list[str], where: str) -> Tokenizer:
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ModelError(f"{where}: GGUF tokenizer pre-tokenizer '{pre}' is not supported ({', '.join(PRE_TOKENIZERS)})")
    merges = []
    for m in _strings(metadata, "tokenizer.ggml.merges", where):
        left, sep, right = m.partition(" ")
        if not sep:
            raise ModelError(f"{where}: malformed merge {m!r} in tokenizer.ggml.merges")
        merges.append((left, right))
    try:
        tok = Tokenizer(models.BPE(vocab=_vocab(tokens), merges=merges, fuse_unk=False))
    except Exception as e:
        raise ModelError(f"{where}: inconsistent GGUF BPE vocabulary ({str(e).splitlines()[0]})") from None
    tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece(metadata: dict, tokens: list[str], types: list, where: str) -> Tokenizer:
    scores = metadata.get("tokenizer.ggml.scores")
    if not isinstance(scores, list) or len(scores) != len(tokens):
        raise ModelError(f"{where}: a llama GGUF tokenizer needs tokenizer.ggml.scores, one per token")
    vocab = _vocab(tokens)
    # transformers' SentencePiece converter: every split of a piece into two pieces is a merge, ranked
    # by the merged piece's score (higher first), then by the parts' ids.
    ranked = []
    for piece, pid in vocab.items():
        if types[pid] in (CONTROL, BYTE) or len(piece) < 2:
            continue
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                ranked.append((-float(scores[pid]), vocab[left], vocab[right], left, right))
    merges = [(left, right) for *_, left, right in sorted(ranked)]
    unk = metadata.get("tokenizer.ggml.unknown_token_id", 0)
    unk_token = tokens[unk] if isinstance(unk, int) and 0 <= unk < len(tokens) else None
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk_token, fuse_unk=True, byte_fallback=True))
    steps = [normalizers.Replace(" ", "\u2581")]
    if metadata.get("tokenizer.ggml.add_space_prefix", True):
        steps.insert(0, normalizers.Prepend("\u2581"))
    tok.normalizer = normalizers.Sequence(steps)
    strip = [decoders.Strip(" ", 1, 0)] if metadata.get("tokenizer.ggml.add_space_prefix", True) else []
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), *strip])
    return tok
