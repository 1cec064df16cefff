"""Language codes: one code per language, ISO 639-1 where one exists, decided in one place.

The data sources name languages differently: ``spa``/``deu`` (Tatoeba, OPUS-MT; ISO 639-3), ``spa_Latn``
(FLORES-200: code + script), ``zho-CN`` (NTREX: code + region), ``esp``/``ned`` (CoNLL-2002's own file names),
``ger``/``fre`` (ISO 639-2/B), ``es`` (XNLI, XQuAD). Every reader and config goes through
:func:`normalize_language` so that a pair loaded from Tatoeba and a test set loaded from XNLI meet under the same
key (``es``), and per-language metrics, batches and model cards agree.

Rules:

* the primary subtag is kept; script, region and variant subtags (``_Latn``, ``-ES``, ``-Hans``) are dropped;
* ISO 639-3, 639-2/T and 639-2/B codes of a language that has an ISO 639-1 code map to that code
  (``deu``/``ger`` -> ``de``); individual languages of a macrolanguage that is the usual name of the language map
  to the macrolanguage's code, as CLDR's aliases do (``cmn`` -> ``zh``, ``arb`` -> ``ar``, ``swh`` -> ``sw``,
  ``pes`` -> ``fa``, ``zsm`` -> ``ms``, ``lvs`` -> ``lv``, ...); distinct Chinese languages stay apart
  (``yue``, ``wuu``);
* ``esp`` -> ``es`` and ``ned`` -> ``nl`` are the CoNLL-2002 file names (*ours*: ``ned`` is also the ISO 639-3
  code of Nde-Gbite, which no source here uses);
* any other syntactically valid code is returned lower-cased (no whitelist: ``ast``, ``kab`` pass through).
"""

from __future__ import annotations

import re

from amber_align.errors import ConfigError

__all__ = ["normalize_language", "is_known_language", "ISO639_1", "LANGUAGE_ALIASES"]


# ISO 639-1 code, then its ISO 639-3 / 639-2/T code, then (after "/") its 639-2/B code where that differs.
_TABLE = """
aa aar; ab abk; af afr; ak aka; am amh; an arg; ar ara; as asm; av ava; ay aym; az aze; ba bak; be bel; bg bul;
bi bis; bm bam; bn ben; bo bod/tib; br bre; bs bos; ca cat; ce che; ch cha; co cos; cr cre; cs ces/cze; cu chu;
cv chv; cy cym/wel; da dan; de deu/ger; dv div; dz dzo; ee ewe; el ell/gre; en eng; eo epo; es spa; et est;
eu eus/baq; fa fas/per; ff ful; fi fin; fj fij; fo fao; fr fra/fre; fy fry; ga gle; gd gla; gl glg; gn grn;
gu guj; gv glv; ha hau; he heb; hi hin; ho hmo; hr hrv; ht hat; hu hun; hy hye/arm; hz her; ia ina; id ind;
ie ile; ig ibo; ii iii; ik ipk; io ido; is isl/ice; it ita; iu iku; ja jpn; jv jav; ka kat/geo; kg kon; ki kik;
kj kua; kk kaz; kl kal; km khm; kn kan; ko kor; kr kau; ks kas; ku kur; kv kom; kw cor; ky kir; la lat; lb ltz;
lg lug; li lim; ln lin; lo lao; lt lit; lu lub; lv lav; mg mlg; mh mah; mi mri/mao; mk mkd/mac; ml mal; mn mon;
mr mar; ms msa/may; mt mlt; my mya/bur; na nau; nb nob; nd nde; ne nep; ng ndo; nl nld/dut; nn nno; no nor;
nr nbl; nv nav; ny nya; oc oci; oj oji; om orm; or ori; os oss; pa pan; pi pli; pl pol; ps pus; pt por; qu que;
rm roh; rn run; ro ron/rum; ru rus; rw kin; sa san; sc srd; sd snd; se sme; sg sag; si sin; sk slk/slo; sl slv;
sm smo; sn sna; so som; sq sqi/alb; sr srp; ss ssw; st sot; su sun; sv swe; sw swa; ta tam; te tel; tg tgk;
th tha; ti tir; tk tuk; tl tgl; tn tsn; to ton; tr tur; ts tso; tt tat; tw twi; ty tah; ug uig; uk ukr; ur urd;
uz uzb; ve ven; vi vie; vo vol; wa wln; wo wol; xh xho; yi yid; yo yor; za zha; zh zho/chi; zu zul
"""

# Individual languages written under their macrolanguage's code (CLDR language aliases), withdrawn ISO 639-1
# codes, and the CoNLL-2002 file names.
_EXTRA_ALIASES = {
    "arb": "ar",  # Standard Arabic (FLORES arb_Arab, NTREX)
    "cmn": "zh",  # Mandarin (Tatoeba)
    "swh": "sw",  # Swahili (FLORES swh_Latn, Tatoeba)
    "pes": "fa",  # Iranian Persian (Tatoeba)
    "zsm": "ms",  # Standard Malay (Tatoeba)
    "lvs": "lv",  # Standard Latvian (Tatoeba)
    "ekk": "et",  # Standard Estonian (FLORES)
    "khk": "mn",  # Halh Mongolian (FLORES)
    "uzn": "uz",  # Northern Uzbek (FLORES)
    "azj": "az",  # North Azerbaijani (FLORES)
    "ory": "or",  # Odia (FLORES)
    "npi": "ne",  # Nepali (FLORES)
    "pbt": "ps",  # Southern Pashto (FLORES)
    "plt": "mg",  # Plateau Malagasy (FLORES)
    "ydd": "yi",  # Eastern Yiddish (FLORES)
    "gaz": "om",  # West Central Oromo (FLORES)
    "kmr": "ku",  # Northern Kurdish (FLORES)
    "iw": "he",  # withdrawn ISO 639-1 codes
    "in": "id",
    "ji": "yi",
    "jw": "jv",
    "mo": "ro",
    "esp": "es",  # CoNLL-2002 Spanish (esp.train, esp.testa, esp.testb)
    "ned": "nl",  # CoNLL-2002 Dutch (ned.train, ...)
}


# Languages with no ISO 639-1 code that the sources here use (Tatoeba XSR, FLORES), plus a few common ones: they
# pass through unchanged, and listing them lets a file suffix such as ``.ast`` be recognised as a language.
_NO_ISO1 = frozenset(
    """
    ace ang arq ars ary arz ast awa ban bem ber bho bug cbk ceb ckb crh csb dik dsb dtp dyu fil fon fur fuv gsw
    haw hne hsb ilo kab kac kam kbp kea kmb knc kzj lfn lij lmo ltg lus mag mai max mhr min mni mos nds nov
    nso nus orv pag pam pap pms prs quy sat scn shn swg szl taq tpi tum tzl umb vec war wuu yue
    """.split()
)


def _build_tables() -> tuple[frozenset[str], dict[str, str]]:
    iso1: set[str] = set()
    aliases: dict[str, str] = {}
    for entry in _TABLE.split(";"):
        parts = entry.split()
        if not parts:
            continue
        two, others = parts[0], parts[1].split("/")
        iso1.add(two)
        for code in others:
            aliases[code] = two
    aliases.update(_EXTRA_ALIASES)
    return frozenset(iso1), aliases


ISO639_1, LANGUAGE_ALIASES = _build_tables()
"""``ISO639_1``: the ISO 639-1 codes; ``LANGUAGE_ALIASES``: other code -> ISO 639-1 code."""

# A language tag: a primary subtag of 2-8 letters, then subtags of 1-8 letters/digits separated by "-" or "_".
_TAG = re.compile(r"^([A-Za-z]{2,8})((?:[-_][A-Za-z0-9]{1,8})*)$")


def normalize_language(code: str) -> str:
    """Return the one code the package uses for the language named ``code``.

    >>> [normalize_language(c) for c in ("spa", "spa_Latn", "ES", "es-ES", "ger", "ned", "zho-CN", "cmn", "ast")]
    ['es', 'es', 'es', 'es', 'de', 'nl', 'zh', 'zh', 'ast']

    Raises:
        ConfigError: ``code`` is not a string, is empty, or is not a language tag (letters, then ``-``/``_``
            separated subtags of letters and digits).
    """
    if not isinstance(code, str):
        raise ConfigError(f"language code must be a string, got {type(code).__name__} {code!r}")
    match = _TAG.match(code.strip())
    if match is None:
        what = "is empty" if not code.strip() else "is not a language code (expected e.g. 'es', 'spa', 'es-ES')"
        raise ConfigError(f"language code {code!r} {what}")
    primary = match.group(1).lower()
    return LANGUAGE_ALIASES.get(primary, primary)


def is_known_language(code: str) -> bool:
    """True when ``code`` (any form :func:`normalize_language` accepts) names a language in the tables.

    Used to infer a language from a file name: ``test.spa`` names Spanish, ``train.txt`` names no language.
    """
    match = _TAG.match(code.strip()) if isinstance(code, str) else None
    if match is None:
        return False
    primary = match.group(1).lower()
    # Withdrawn two-letter codes (``in``, ``iw``) normalise but are not recognised here: ``data.in`` names no language.
    return primary in ISO639_1 or (len(primary) > 2 and primary in LANGUAGE_ALIASES) or primary in _NO_ISO1
