"""Word tokenization of raw sentences, done once at load (docs/methods.md "Words").

The same words feed the word aligner (eflomal/fast_align write Pharaoh indices into them), the links, and training
(each word's subwords come from the fast tokenizer's ``word_ids()`` with ``is_split_into_words=True``). So the rule
must be fixed and cheap, and it should not cut through a subword boundary of mBERT/XLM-R: we use BERT's own basic
tokenizer, from the ``tokenizers`` library rather than re-written by hand:

* ``BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)``: control
  characters, U+FFFD and zero-width format characters (category Cf, e.g. U+200B) are removed, every whitespace
  character becomes a space, and a space is put around each CJK ideograph. Case and accents are kept (mBERT-cased
  and XLM-R are cased; ``Qué`` stays ``Qué``).
* ``BertPreTokenizer``: split on whitespace and on every punctuation character (Unicode category P*, and all ASCII
  non-alphanumerics such as ``$``, ``+``, ``'``), each punctuation mark becoming its own word:
  ``"¿Qué?"`` -> ``["¿", "Qué", "?"]``, ``"don't"`` -> ``["don", "'", "t"]``, ``"3.14"`` -> ``["3", ".", "14"]``.

What this does to scripts written without spaces (as BERT does; documented, not fixed):

* Chinese: one word per ideograph (``"我爱北京"`` -> ``["我", "爱", "北", "京"]``).
* Japanese: kanji are split one per character, but kana are not ideographs: a run of hiragana or katakana stays one
  word (``"私は学生です。"`` -> ``["私", "は", "学", "生", "です", "。"]``, ``"カタカナとひらがな"`` is one word).
* Thai, Lao, Khmer, Burmese: no spaces between words, so a whole space-free run is one "word".
* Korean uses spaces between words (eojeol) and is split on them.

``word_tokenize`` is idempotent: ``word_tokenize(" ".join(word_tokenize(t))) == word_tokenize(t)``; so a
pre-tokenized corpus that was written by this function reads back to the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import normalizers, pre_tokenizers

from amber_align.errors import DataFormatError

__all__ = ["word_tokenize", "word_tokenize_batch"]

_NORMALIZER = normalizers.BertNormalizer(
    clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
)
_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


def word_tokenize(text: str) -> list[str]:
    """Split ``text`` into words as BERT's basic tokenizer does, keeping case and accents.

    Empty or whitespace-only text gives ``[]``.

    Raises:
        DataFormatError: ``text`` is not a string, or holds a lone surrogate (not encodable as UTF-8, e.g. from a
            JSON ``"\\ud800"`` escape).
    """
    if not isinstance(text, str):
        raise DataFormatError(f"expected text (str) to word-tokenize, got {type(text).__name__}: {text!r:.80}")
    if not text:
        return []
    try:
        normalized = _NORMALIZER.normalize_str(text)
    except UnicodeEncodeError as err:
        raise DataFormatError(
            f"text is not valid Unicode (lone surrogate {text[err.start]!r} at character {err.start}): {text!r:.80}"
        ) from None
    return [word for word, _ in _PRE_TOKENIZER.pre_tokenize_str(normalized)]


def word_tokenize_batch(texts: Sequence[str]) -> list[list[str]]:
    """:func:`word_tokenize` of every text, in order."""
    return [word_tokenize(text) for text in texts]
