"""normalize_language: one code per language (ISO 639-1 where one exists) from every form the sources use."""

from __future__ import annotations

import pytest

from amber_align.data.languages import ISO639_1, LANGUAGE_ALIASES, is_known_language, normalize_language
from amber_align.errors import ConfigError


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("es", "es"), ("ES", "es"), ("spa", "es"), ("spa_Latn", "es"), ("esp", "es"), ("es-ES", "es"),
        ("es_MX", "es"), ("de", "de"), ("deu", "de"), ("ger", "de"), ("deu_Latn", "de"),
        ("ned", "nl"), ("nld", "nl"), ("dut", "nl"), ("eng", "en"), ("en-US", "en"), ("eng_Latn", "en"),
        ("zho", "zh"), ("zho-CN", "zh"), ("zho_Hans", "zh"), ("zh-Hant-TW", "zh"), ("cmn", "zh"), ("chi", "zh"),
        ("fra", "fr"), ("fre", "fr"), ("fra_Latn", "fr"), ("rus", "ru"), ("vie", "vi"), ("hin", "hi"),
        ("ara", "ar"), ("arb", "ar"), ("arb_Arab", "ar"), ("bul", "bg"), ("ell", "el"), ("gre", "el"),
        ("tur", "tr"), ("jpn", "ja"), ("jpn_Jpan", "ja"), ("ron", "ro"), ("rum", "ro"), ("swa", "sw"),
        ("swh", "sw"), ("swh_Latn", "sw"), ("urd", "ur"), ("tha", "th"), ("kor", "ko"), ("kor_Hang", "ko"),
        ("pes", "fa"), ("per", "fa"), ("zsm", "ms"), ("lvs", "lv"), ("nob", "nb"), ("cor", "kw"),
        ("iw", "he"), (" es ", "es"),
    ],
)
def test_normalize_language_table(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize(("code", "expected"), [("ast", "ast"), ("KAB", "kab"), ("yue", "yue"), ("wuu", "wuu"),
                                                ("qaa", "qaa"), ("gsw-CH", "gsw"), ("xyzzy", "xyzzy")])
def test_codes_without_iso639_1_pass_through_lower_cased(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize("bad", ["", "   ", "e", "es es", "es/ES", "1es", "español", "es-", "-es", "es--ES", "é"])
def test_invalid_codes_raise_config_error_naming_the_value(bad: str) -> None:
    with pytest.raises(ConfigError, match="language code"):
        normalize_language(bad)


def test_non_string_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        normalize_language(None)  # type: ignore[arg-type]


def test_table_is_consistent() -> None:
    assert all(len(code) == 2 for code in ISO639_1)
    assert all(target in ISO639_1 for target in LANGUAGE_ALIASES.values())
    assert all(normalize_language(code) == code for code in ISO639_1)  # a 639-1 code maps to itself
    assert all(normalize_language(normalize_language(c)) == normalize_language(c) for c in LANGUAGE_ALIASES)


def test_is_known_language() -> None:
    assert is_known_language("spa") and is_known_language("es") and is_known_language("spa_Latn")
    assert is_known_language("ast")  # no 639-1 code, but a language the sources use
    for not_a_language in ("txt", "devtest", "tsv", "train", "in", "", "a b"):
        assert not is_known_language(not_a_language), not_a_language


def test_every_language_in_shared_data_is_known(shared_data) -> None:
    """Tatoeba XSR (~100 languages), FLORES and NTREX file names all name known languages; 639-1 where one exists."""
    codes = {p.name.split(".")[1].split("-")[0] for p in (shared_data / "xsr" / "tatoeba").glob("tatoeba.*-eng.*")}
    flores = shared_data / "parallel" / "opus_mt_testsets" / "flores200_devtest"
    codes |= {p.name.split(".")[0] for p in flores.glob("*.devtest")}
    codes |= {p.name.split(".")[1] for p in (shared_data / "parallel/ntrex128").glob("newstest2019-*.txt")}
    codes |= {p.name.split("-")[1] for p in (shared_data / "parallel/opus_mt_testsets").glob("eng-*")}
    assert len(codes) > 100
    unknown = sorted(c for c in codes if not is_known_language(c))
    assert unknown == [], unknown
    assert {"spa", "deu", "fra", "cmn", "arb", "swh_Latn", "zho-CN"} <= codes
    assert [normalize_language(c) for c in ("spa", "deu", "fra", "cmn", "arb", "swh_Latn", "zho-CN")] == [
        "es", "de", "fr", "zh", "ar", "sw", "zh"]
    # every XNLI language, from whichever source names it
    xnli = {"ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"}
    assert xnli <= {normalize_language(c) for c in codes}


def test_task_config_normalises_the_languages_results_are_keyed_by(tmp_path):
    """Issue 23 item 8: `evaluate --languages pl` wrote a row `pl`, `--languages pol` a row `pol` (so `compare`
    found no common language), and `bg-Cyrl-BG` was kept verbatim."""
    from amber_align.tasks.config import TaskConfig

    common = dict(output_dir=str(tmp_path / "out"), model_name_or_path="m", report_to=[])
    assert TaskConfig(task="xsr", languages="pol,bg-Cyrl-BG,pl", **common).languages == ["pl", "bg"]
    assert TaskConfig(task="xsr", languages=["pl"], **common).languages == ["pl"]
    config = TaskConfig(task="nli", eval_data={"deu": "a.tsv", "fr-FR": "b.tsv"}, languages=["ger"],
                        train_language="eng", **common)
    assert config.eval_data == {"de": "a.tsv", "fr": "b.tsv"} and config.languages == ["de"]
    assert config.train_language == "en"
    with pytest.raises(ConfigError, match=r"TaskConfig\.eval_data: 'de' and another key both name language 'de'"):
        TaskConfig(task="nli", eval_data={"deu": "a.tsv", "de": "b.tsv"}, **common)
    with pytest.raises(ConfigError, match=r"TaskConfig\.languages: language code 'p!' is not a language code"):
        TaskConfig(task="xsr", languages="p!", **common)


def test_a_dropped_script_subtag_is_said(caplog):
    """Issue 23 item 7: `sr-Latn` in src_lang silently became `sr`."""
    import logging

    from amber_align.data.parallel import ParallelSource

    with caplog.at_level(logging.INFO):
        source = ParallelSource(src_file="a.txt", tgt_file="b.txt", src_lang="sr-Latn", tgt_lang="en")
    assert source.src_lang == "sr"
    assert [r.levelname for r in caplog.records if "'sr-Latn' is read as 'sr'" in r.getMessage()] == ["WARNING"]
