"""word_tokenize: BERT's basic tokenization (whitespace, punctuation, CJK per character), cased and accented."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber_align.data.words import word_tokenize, word_tokenize_batch
from amber_align.errors import DataFormatError


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", []),
        ("   \t\n ", []),
        ("¿Qué pasó, señor?", ["¿", "Qué", "pasó", ",", "señor", "?"]),
        ("Él dijo: «Hola»", ["Él", "dijo", ":", "«", "Hola", "»"]),
        ("naïve Café", ["naïve", "Café"]),  # no lowercasing, no accent stripping
        ("don't e-mail 3.14 $5", ["don", "'", "t", "e", "-", "mail", "3", ".", "14", "$", "5"]),
        ("我爱北京。", ["我", "爱", "北", "京", "。"]),  # one word per ideograph
        ("私は学生です。", ["私", "は", "学", "生", "です", "。"]),  # kanji split, kana runs kept (BERT)
        ("カタカナとひらがな", ["カタカナとひらがな"]),  # no ideograph: one word
        ("안녕하세요 세계", ["안녕하세요", "세계"]),  # Korean: spaces
        ("ไทยภาษา", ["ไทยภาษา"]),  # Thai has no spaces: one word
        ("a\u00a0b\u202fc", ["a", "b", "c"]),  # no-break spaces are whitespace
        ("e\u200bf x\x00y", ["ef", "xy"]),  # zero-width and control characters removed (clean_text)
        ("a\tb\r\nc", ["a", "b", "c"]),
    ],
)
def test_word_tokenize_examples(text: str, words: list[str]) -> None:
    assert word_tokenize(text) == words


def test_batch_matches_single() -> None:
    texts = ["Hola, mundo.", "", "我爱你"]
    assert word_tokenize_batch(texts) == [word_tokenize(t) for t in texts]


def test_bad_input_raises_data_format_error() -> None:
    with pytest.raises(DataFormatError, match="lone surrogate"):
        word_tokenize("a\ud800b")
    with pytest.raises(DataFormatError, match="expected text"):
        word_tokenize(None)  # type: ignore[arg-type]


def test_words_agree_with_mbert_pre_tokenization(shared_data) -> None:
    """The words never cut an mBERT subword: tokenizing the words gives the ids of tokenizing the raw text."""
    from transformers import BertTokenizerFast

    vocab = shared_data / "tokenizers" / "bert-base-multilingual-cased" / "vocab.txt"
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=False)
    assert tokenizer.convert_tokens_to_ids("[CLS]") == 101 and tokenizer.convert_tokens_to_ids("señor") != 100
    texts = ["¿Qué pasó, señor?", "Das ist nichts, was jeder Beliebige tun kann.", "我爱北京天安门。",
             "私は学生です。", "Veux-tu quelque chose à boire\u202f?", "naïve café, 3.14 $5"]
    for text in texts:
        from_words = tokenizer(word_tokenize(text), is_split_into_words=True)["input_ids"]
        assert from_words == tokenizer(text)["input_ids"], text


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_word_tokenize_is_idempotent(text: str) -> None:
    words = word_tokenize(text)
    assert word_tokenize(" ".join(words)) == words
    assert all(word and not any(ch.isspace() for ch in word) for word in words)
