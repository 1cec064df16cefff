"""Tokenizers built from the real vocabularies: ids, templates, word_ids, save/reload, errors, model checks."""

from __future__ import annotations

import gzip
import lzma
import re

import pytest
from transformers import AutoModel, AutoTokenizer

from amber_align.errors import DataFormatError, TokenizerMismatchError
from amber_align.tokenization import (
    build_xlmr_tokenizer,
    check_tokenizer_matches_model,
    load_mbert_tokenizer,
    nmt_nfkc_charsmap,
    special_token_ids,
)
from helpers import MBERT_VOCAB, XLMR_VOCAB, mbert_tokenizer, tiny_config, tiny_model, tiny_model_dir, xlmr_tokenizer

MULTILINGUAL = [
    "Hello World!",
    "¿Dónde está la estación de tren?",
    "Der Bäcker öffnet um 6 Uhr.",
    "Москва — столица России.",
    "東京は日本の首都です。",
    "Ｆｕｌｌｗｉｄｔｈ ﬁne ½ ㈱ and a ▁ block",
    "tabs\tand\nnewlines  and   runs",
]

# Ids of the real XLM-R tokenizer for these texts, as published in transformers' own XLM-R tokenizer tests.
XLMR_PUBLISHED = {
    "Hello World!": [0, 35378, 6661, 38, 2],
    'This is a very long text with a lot of weird characters, such as: . , ~ ? ( ) " [ ] ! : - . Also we will add '
    "words that should not exsist and be tokenized to <unk>, such as saoneuhaoesuth": [
        0, 3293, 83, 10, 4552, 4989, 7986, 678, 10, 5915, 111, 179459, 124850, 4, 6044, 237, 12, 6, 5, 6, 4, 6780,
        705, 15, 1388, 44, 378, 10114, 711, 152, 20, 6, 5, 22376, 642, 1221, 15190, 34153, 450, 5608, 959, 1119,
        57702, 136, 186, 47, 1098, 29367, 47, 3, 6, 4, 6044, 237, 6284, 50901, 528, 31, 90, 34, 927, 2],
    "BERT is designed to pre-train deep bidirectional representations from unlabeled text by jointly conditioning "
    "on both left and right context in all layers.": [
        0, 20080, 618, 83, 82775, 47, 479, 9, 1517, 73, 53894, 333, 80581, 110117, 18811, 5256, 1295, 51, 152526,
        297, 7986, 390, 124416, 538, 35431, 214, 98, 15044, 25737, 136, 7108, 43701, 23, 756, 135355, 7, 5, 2],
    "The quick brown fox jumps over the lazy dog.": [
        0, 581, 63773, 119455, 6, 147797, 88203, 7, 645, 70, 21, 3285, 10269, 5, 2],
}


# ---------------------------------------------------------------- mBERT
def test_mbert_special_ids_and_casing():
    tok = mbert_tokenizer()
    assert len(tok) == 119_547
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id, tok.unk_token_id) == (
        101, 102, 0, 103, 100)
    assert tok("Hello World")["input_ids"] == [101, 31178, 10315, 102]
    assert tok.convert_tokens_to_ids("Hello") != tok.convert_tokens_to_ids("hello")  # cased
    assert tok.tokenize("Ärger 東京") == ["Ä", "##rger", "東", "京"]  # accents kept, CJK split
    assert tok.unk_token_id not in tok("Straße Москва")["input_ids"]
    assert tok.model_max_length == 512


def test_mbert_save_reload_keeps_casing(tmp_path):
    tok = mbert_tokenizer()
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.backend_tokenizer.normalizer.__getstate__() == tok.backend_tokenizer.normalizer.__getstate__()
    assert getattr(reloaded, "do_lower_case", False) is False
    for text in MULTILINGUAL:
        assert reloaded(text)["input_ids"] == tok(text)["input_ids"], text
    assert reloaded.tokenize("Hello") == ["Hello"]


def test_mbert_plain_and_gzip_vocab_agree(tmp_path):
    text = lzma.open(MBERT_VOCAB, "rt", encoding="utf-8").read()
    (tmp_path / "vocab.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "vocab.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(text)
    expected = mbert_tokenizer().get_vocab()
    assert load_mbert_tokenizer(tmp_path / "vocab.txt").get_vocab() == expected
    assert load_mbert_tokenizer(tmp_path / "vocab.txt.gz").get_vocab() == expected
    assert load_mbert_tokenizer(tmp_path).get_vocab() == expected  # a folder holding vocab.txt


@pytest.mark.parametrize("content, message", [
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", r"\[MASK\]"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n", r":7: duplicate token 'hello' \(first on line 6\)"),
    ("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n", r":3: empty vocabulary entry"),
])
def test_mbert_bad_vocab(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_mbert_tokenizer(path)


def test_mbert_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        load_mbert_tokenizer(tmp_path / "nope.txt")


# ---------------------------------------------------------------- XLM-R
def test_xlmr_ids_and_templates():
    tok = xlmr_tokenizer()
    assert len(tok) == 250_002
    assert tok.convert_tokens_to_ids(["▁Hello", "▁world", "<mask>"]) == [35378, 8999, 250001]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 250001)
    assert tok("Hello world")["input_ids"] == [0, 35378, 8999, 2]
    assert tok("Hello", "world")["input_ids"] == [0, 35378, 2, 2, 8999, 2]  # <s> A </s></s> B </s>
    assert tok("Hello <mask>")["input_ids"] == [0, 35378, 250001, 2]  # lstrip: no stray "▁" before <mask>
    assert tok.mask_token_id == 250001 and tok.added_tokens_decoder[250001].lstrip
    assert tok.model_max_length == 512


@pytest.mark.parametrize("text", list(XLMR_PUBLISHED))
def test_xlmr_matches_published_ids(text):
    assert xlmr_tokenizer()(text)["input_ids"] == XLMR_PUBLISHED[text]


def test_xlmr_normalizer_nfkc_and_nmt_spaces():
    tok = xlmr_tokenizer()
    normalize = tok.backend_tokenizer.normalizer.normalize_str
    assert normalize("Ｈｅｌｌｏ ﬁne ½") == "Hello fine 1⁄2"
    assert normalize("a\u2581b\u200bc\u00a0d\te") == "a b c d e"
    assert normalize("a\x01b\x7fc") == "abc"  # control characters deleted
    assert normalize("～") == "～"  # XLM-R's own map keeps FULLWIDTH TILDE (BlingFire's export folds it)
    assert normalize("a\u200cb\u200dc") == "a b c"  # ZWNJ/ZWJ become spaces, as in XLM-R (not <unk>)
    assert tok("Ｈｅｌｌｏ  ｗｏｒｌｄ")["input_ids"] == tok("Hello world")["input_ids"]


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_word_ids_split_into_words(kind):
    tok = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    words = ["Hello", "antidisestablishmentarianism", "!"]
    enc = tok(words, is_split_into_words=True)
    word_ids = enc.word_ids()
    assert word_ids[0] is None and word_ids[-1] is None
    assert word_ids[1] == 0 and word_ids[-2] == 2
    assert word_ids.count(1) > 1  # a multi-piece word
    assert sorted({w for w in word_ids if w is not None}) == [0, 1, 2]
    pair = tok(["Hello", "world"], ["Hola", "mundo"], is_split_into_words=True)
    seq, wid = pair.sequence_ids(), pair.word_ids()
    assert {w for w, side in zip(wid, seq) if side == 1} == {0, 1}
    assert wid.count(None) == (3 if kind == "mbert" else 4)  # [CLS] A [SEP] B [SEP] / <s> A </s></s> B </s>


def test_tiny_xlmr_dir_reloads_with_identical_ids(tmp_path):
    tok = xlmr_tokenizer()
    path = tiny_model_dir("xlmr", tmp_path / "xlmr")
    reloaded = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    assert model.config.model_type == "xlm-roberta" and model.config.vocab_size == len(tok) == len(reloaded)
    assert model.config.pad_token_id == reloaded.pad_token_id == 1
    texts = MULTILINGUAL + list(XLMR_PUBLISHED) + ["Hello <mask>."]
    assert reloaded(texts)["input_ids"] == tok(texts)["input_ids"]
    assert reloaded.added_tokens_decoder[250001].lstrip
    words = ["Hello", "antidisestablishmentarianism"]
    assert reloaded(words, is_split_into_words=True).word_ids() == tok(words, is_split_into_words=True).word_ids()
    check_tokenizer_matches_model(reloaded, model)


def test_tiny_mbert_dir(tmp_path):
    path = tiny_model_dir("mbert", tmp_path / "mbert")
    model = AutoModel.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "bert" and model.config.hidden_size == 32
    assert model.config.vocab_size == len(tok) == 119_547
    assert tok.tokenize("Hello") == ["Hello"]
    first = next(iter(model.state_dict().values())).clone()
    tiny_model_dir("mbert", tmp_path / "again")
    assert (next(iter(AutoModel.from_pretrained(tmp_path / "again").state_dict().values())) == first).all()


@pytest.mark.parametrize("content, message", [
    ("0\t<s>\t0.0\n1\t<pad>\n", r":2: expected 'id<TAB>piece<TAB>score', got 2"),
    ("0\t<s>\t0.0\n2\t<pad>\t0.0\n", r":2: ids must run 0, 1, 2"),
    ("0\t<s>\t0.0\n1\t<pad>\tx\n", r":2: id must be an integer and score a float"),
    ("0\t<s>\t0\n1\t<pad>\t0\n2\t</s>\t0\n3\t<oov>\t0\n4\t<mask>\t0\n",
     r":4: expected the XLM-R special piece '<unk>'"),
    ("0\t<s>\t0\n1\t<pad>\t0\n2\t</s>\t0\n3\t<unk>\t0\n4\ta\t-1\n", r"expected a '<mask>' row"),
])
def test_xlmr_bad_table(tmp_path, content, message):
    path = tmp_path / "table.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        build_xlmr_tokenizer(path)


def test_xlmr_small_table_builds(tmp_path):
    rows = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "▁ab", "<mask>"]
    path = tmp_path / "table.tsv"
    path.write_text("".join(f"{i}\t{p}\t{-float(i)}\n" for i, p in enumerate(rows)), encoding="utf-8")
    tok = build_xlmr_tokenizer(path)
    assert len(tok) == 9 and tok.mask_token_id == 8
    assert tok("ab ba")["input_ids"] == [0, 7, 4, 6, 5, 2]


# ---------------------------------------------------------------- shared data (skipped without it)
def test_fixtures_equal_shared_files(shared_data):
    tokenizers = shared_data / "tokenizers"
    mbert = tokenizers / "bert-base-multilingual-cased" / "vocab.txt"
    assert lzma.open(MBERT_VOCAB, "rb").read() == mbert.read_bytes()
    assert lzma.open(XLMR_VOCAB, "rb").read() == (
        tokenizers / "xlm-roberta-base" / "xlmr_vocab_hf_ids_derived.tsv").read_bytes()


def test_charsmap_agrees_with_blingfire_xlmr_charmap(shared_data):
    """BlingFire's charmap was generated from XLM-R's sentencepiece model: every entry but two must match ours.

    The exceptions, where XLM-R's own map (our table) keeps the character: U+FF5E FULLWIDTH TILDE (BlingFire folds
    it to "~") and U+1F23B SQUARED CJK UNIFIED IDEOGRAPH-914D (Unicode 9, newer than XLM-R's normaliser)."""
    from tokenizers.normalizers import Precompiled

    normalizer = Precompiled(nmt_nfkc_charsmap())
    entries = 0
    charmap = shared_data / "tokenizers" / "xlm-roberta-base" / "blingfire_charmap.utf8"
    for line in charmap.read_text("utf-8").split("\n"):
        if not line.startswith("\\x"):
            continue
        source, target = line.split(" ", 1)
        if re.fullmatch(r"(\\x[0-9a-f]+)+", target):
            target = "".join(chr(int(h, 16)) for h in target.split("\\x")[1:])
        if source in ("\\xff5e", "\\x1f23b"):
            char = chr(int(source[2:], 16))
            assert normalizer.normalize_str(char) == char
            continue
        assert normalizer.normalize_str(chr(int(source[2:], 16))) == target, line
        entries += 1
    assert entries > 4000


# ---------------------------------------------------------------- model checks
def test_check_tokenizer_matches_model():
    tok = mbert_tokenizer()
    check_tokenizer_matches_model(tok, tiny_config("mbert"))
    check_tokenizer_matches_model(tok, tiny_config("mbert", vocab_size=len(tok) + 453))  # padded matrix: fine
    small = tiny_model("mbert", vocab_size=1000)
    with pytest.raises(TokenizerMismatchError) as info:
        check_tokenizer_matches_model(tok, small, name="student")
    message = str(info.value)
    assert "119547" in message and "1000" in message and "student" in message and "mbert-cased-vocab" in message
    assert "expected" in message.lower()
    # another model's tokenizer, smaller than the matrix by more than any padding (MiniLM's in a mini mBERT)
    with pytest.raises(TokenizerMismatchError, match=r"has 119547 tokens but model .* embeds 150000 .*30453 rows "
                                                     r"would never be used.*another model's tokenizer"):
        check_tokenizer_matches_model(tok, tiny_config("mbert", vocab_size=150000))
    check_tokenizer_matches_model(tok, tiny_config("mbert", vocab_size=len(tok) + 1024))  # the most padding allowed


class _OddTokenizer:
    """Stands in for a broken tokenizer whose pad id lies outside its own vocabulary."""

    name_or_path = "odd-tokenizer"
    pad_token = "<pad>"
    pad_token_id = 5000

    def __len__(self) -> int:
        return 900


def test_check_pad_ids():
    with pytest.raises(TokenizerMismatchError, match="pads with id 1 .*pad_token_id=0"):
        check_tokenizer_matches_model(xlmr_tokenizer(), tiny_config("xlmr", pad_token_id=0))
    with pytest.raises(TokenizerMismatchError, match=r"odd-tokenizer.*pads with id 5000 .*vocab_size 1000"):
        check_tokenizer_matches_model(_OddTokenizer(), tiny_config("mbert", vocab_size=1000))


def test_special_token_ids():
    assert special_token_ids(mbert_tokenizer()) == {"cls": 101, "sep": 102, "pad": 0, "mask": 103, "unk": 100}
    assert special_token_ids(xlmr_tokenizer()) == {"cls": 0, "sep": 2, "pad": 1, "mask": 250001, "unk": 3,
                                                   "bos": 0, "eos": 2}


def test_another_models_tokenizer_is_refused_by_class_special_ids_and_casing(tmp_path):
    """Issue 23 item 3: besides sizes, what can be checked cheaply is checked, naming both sides: the class the
    config names, the special ids the config records, a WordPiece vocabulary's casing against its settings. The
    legitimate cases pass: a BERT config naming XLMRobertaTokenizer with an XLM-R tokenizer (multilingual-e5)."""
    from transformers import BertTokenizerFast

    xlmr, mbert = xlmr_tokenizer(), mbert_tokenizer()
    e5_like = tiny_config("mbert", vocab_size=len(xlmr) + 35, pad_token_id=1, tokenizer_class="XLMRobertaTokenizer")
    check_tokenizer_matches_model(xlmr, e5_like)  # BERT config + XLM-R tokenizer, padded rows: fine
    wrong_class = tiny_config("mbert", vocab_size=len(mbert), tokenizer_class="XLMRobertaTokenizer")
    with pytest.raises(TokenizerMismatchError, match=r"names tokenizer_class 'XLMRobertaTokenizer' .* is a "
                                                     r"BertTokenizer"):
        check_tokenizer_matches_model(mbert, wrong_class, name="e5-folder")
    # XLM-R config records bos 0 / eos 2: a tokenizer whose <s> sits elsewhere is refused
    moved = tiny_config("xlmr", vocab_size=len(xlmr), bos_token_id=5)
    with pytest.raises(TokenizerMismatchError, match=r"bos_token_id 0 \('<s>'\) but model student has "
                                                     r"config.bos_token_id=5"):
        check_tokenizer_matches_model(xlmr, moved, name="student")
    # casing: mBERT's cased vocabulary with lowercasing settings, and a lowercased vocabulary kept cased
    vocab = mbert.get_vocab()
    uncased_settings = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    with pytest.raises(TokenizerMismatchError, match=r"lowercases its input but \d+ of its \d+ pieces have capitals"):
        check_tokenizer_matches_model(uncased_settings, tiny_config("mbert", vocab_size=len(mbert)))
    lowered: dict[str, int] = {}
    for piece in sorted(vocab, key=vocab.get):
        if piece.startswith("[") and piece.endswith("]"):
            lowered.setdefault(piece, len(lowered))
        else:
            lowered.setdefault(piece.lower(), len(lowered))
    cased_settings = BertTokenizerFast(vocab=lowered, do_lower_case=False)
    with pytest.raises(TokenizerMismatchError, match=r"keeps case but 4 of its \d+ pieces have capitals"):
        check_tokenizer_matches_model(cased_settings, tiny_config("mbert", vocab_size=len(lowered)))
    check_tokenizer_matches_model(BertTokenizerFast(vocab=lowered, do_lower_case=True),
                                  tiny_config("mbert", vocab_size=len(lowered)))  # uncased and lowercasing: fine
