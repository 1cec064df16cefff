"""Streaming training data (``streaming: true``): Cao and AMBER train from lazily read streams, every batch mixes
every language pair, a resumed run sees the uninterrupted run's next batches, and bad input is refused clearly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model_dir
from transformers import AutoModel

from amber_align.data.parallel import ParallelSource, load_parallel, normalize_for_dedup
from amber_align.data.streaming import PairStreams, build_streaming_dataset, iter_source_rows
from amber_align.demo import demo_dir
from amber_align.errors import ConfigError, DataFormatError
from amber_align.modeling import load_masked_lm
from amber_align.pipeline import build_alignment_datasets
from amber_align.trainers import AmberConfig, AmberTrainer, CaoConfig, CaoTrainer

DATA = demo_dir() / "data"
LANGS = ("es", "de", "fr")


def sources(langs=LANGS, links=True):
    return [dict(file=str(DATA / f"{lang}-en.txt"), format="bar", src_lang=lang, tgt_lang="en",
                 **({"alignments": str(DATA / f"{lang}-en.pharaoh")} if links else {})) for lang in langs]


def cao_config(tmp_path, **cfg):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    values = dict(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                  logging_steps=1, save_strategy="no", max_steps=3, per_device_train_batch_size=2, streaming=True,
                  train_data=sources(), pretokenized=True, streaming_buffer_size=64)
    values.update(cfg)
    return CaoConfig(**values), d


class Recording(CaoTrainer):
    """Records the input ids of every batch it trains on."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen = getattr(self, "seen", []) + [inputs["input_ids"].tolist()]
        return super().training_step(model, inputs, num_items_in_batch)


def test_streaming_cao_trains_logs_parts(tmp_path):
    args, d = cao_config(tmp_path)
    train, evaluation = build_alignment_datasets(args, mbert_tokenizer())
    assert isinstance(train, PairStreams) and evaluation is None
    trainer = CaoTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=train,
                         processing_class=mbert_tokenizer(), teacher=AutoModel.from_pretrained(d))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert max((p - before[n]).abs().max().item() for n, p in trainer.model.named_parameters() if n in before) > 0
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 3 and all({"cao_link", "cao_anchor"} <= h.keys() for h in steps)


def test_streaming_amber_trains_logs_parts(tmp_path):
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    args = AmberConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                       logging_steps=1, save_strategy="no", max_steps=2, per_device_train_batch_size=2,
                       learning_rate=1e-3, streaming=True, train_data=sources(("es", "de")), pretokenized=True,
                       streaming_buffer_size=64, mlm_weight=1.0, tlm_weight=1.0, sa_weight=1.0, wa_weight=1.0,
                       cao_weight=1.0)
    train, _ = build_alignment_datasets(args, mbert_tokenizer())
    trainer = AmberTrainer(model=load_masked_lm(str(d)), args=args, train_dataset=train,
                           processing_class=mbert_tokenizer())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert max((p - before[n]).abs().max().item() for n, p in trainer.model.named_parameters() if n in before) > 0
    logged = [h for h in trainer.state.log_history if "loss" in h]
    parts = ("mlm", "tlm", "sa", "wa", "cao_link", "cao_anchor")
    assert len(logged) == 2 and all(p in h and math.isfinite(h[p]) for h in logged for p in parts)


def test_every_streaming_batch_holds_every_language_pair(tmp_path):
    args, d = cao_config(tmp_path, per_device_train_batch_size=3)
    streams = build_streaming_dataset(args, mbert_tokenizer())
    trainer = CaoTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=streams,
                         processing_class=mbert_tokenizer(), teacher=AutoModel.from_pretrained(d))
    loader = trainer.get_train_dataloader()
    for step, batch in zip(range(4), loader):
        assert batch["input_ids"].shape[0] == 2 * 3 * len(LANGS)  # x rows then anchor rows, 3 per pair
    rows = iter(streams)
    for _ in range(5):  # the examples behind those batches: 3 of each pair in every 9 consecutive ones
        window = [next(rows)["pair"] for _ in range(3 * len(LANGS))]
        assert sorted(window) == sorted([f"{lang}-en" for lang in LANGS] * 3)


def test_resumed_streaming_run_sees_the_uninterrupted_next_batches(tmp_path):
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, learning_rate=1e-3)
    args, d = cao_config(tmp_path, **common)
    full = Recording(model=AutoModel.from_pretrained(d), args=args, train_dataset=build_streaming_dataset(
        args, mbert_tokenizer()), processing_class=mbert_tokenizer(), teacher=AutoModel.from_pretrained(d))
    full.train()
    assert len(full.seen) == 4
    checkpoint = Path(args.output_dir) / "checkpoint-2"
    assert checkpoint.is_dir()
    resumed_args, _ = cao_config(tmp_path, output_dir=str(tmp_path / "resumed"), **common)
    resumed = Recording(model=AutoModel.from_pretrained(d), args=resumed_args, train_dataset=build_streaming_dataset(
        resumed_args, mbert_tokenizer()), processing_class=mbert_tokenizer(), teacher=AutoModel.from_pretrained(d))
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.seen == full.seen[2:], "the resumed run replayed or skipped batches"
    final = {n: p for n, p in full.model.named_parameters()}
    assert all(torch.allclose(p, final[n], atol=1e-6) for n, p in resumed.model.named_parameters())


@pytest.mark.distributed
def test_two_ranks_stream_different_batches_that_mix_every_pair(tmp_path):
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent / "distributed" / "streaming_ddp.py"
    out = tmp_path / "r.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(["timeout", "300", sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(script), str(out), str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    for rank in ranks:
        assert rank["world"] == 2 and rank["steps"] == 2 and len(rank["seen"]) == 2
        assert all(len(batch) == 2 * 2 * 2 for batch in rank["seen"])  # x + anchor rows, 2 per pair, 2 pairs
    # accelerate deals whole round-robin batches: every collated batch holds 2 pairs of each language pair
    batches = ranks[0]["pairs"]
    assert batches and all(sorted(b) == ["de-en", "de-en", "es-en", "es-en"] for b in batches)
    assert ranks[0]["seen"] != ranks[1]["seen"], "both ranks trained on the same batches"


def test_streaming_needs_max_steps(tmp_path):
    with pytest.raises(ConfigError, match=r"max_steps: streaming=true needs max_steps > 0.*got -1"):
        CaoConfig(output_dir=str(tmp_path), streaming=True, train_data=sources(), use_cpu=True)


def test_streaming_refuses_eflomal_without_links(tmp_path):
    args, _ = cao_config(tmp_path, train_data=sources(("es",), links=False))
    with pytest.raises(ConfigError, match=r"train_data\[0\].*es-en.txt.*cannot word-align with eflomal.*alignments"):
        build_streaming_dataset(args, mbert_tokenizer())


def _first_batch(args, d):
    trainer = CaoTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=build_streaming_dataset(
        args, mbert_tokenizer()), processing_class=mbert_tokenizer(), teacher=AutoModel.from_pretrained(d))
    return next(iter(trainer.get_train_dataloader()))


def test_streaming_mismatched_line_counts_name_file_and_line(tmp_path):
    src, tgt = tmp_path / "c.es", tmp_path / "c.en"
    src.write_text("uno dos\ntres\ncuatro\n", encoding="utf-8")
    tgt.write_text("one two\nthree\n", encoding="utf-8")
    links = tmp_path / "c.pharaoh"
    links.write_text("0-0 1-1\n0-0\n0-0\n", encoding="utf-8")
    args, d = cao_config(tmp_path, train_data=[dict(src_file=str(src), tgt_file=str(tgt), alignments=str(links))])
    with pytest.raises(DataFormatError, match=r"line counts differ: .*c\.es has 3 lines, .*c\.en has 2") as err:
        _first_batch(args, d)
    assert str(err.value).startswith(f"{src}:3:")  # the longer file, at its first line without a partner


def test_streaming_alignment_errors_name_file_and_line(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("uno dos ||| one two\ntres ||| three\ncuatro ||| four\n", encoding="utf-8")
    short = tmp_path / "short.pharaoh"
    short.write_text("0-0 1-1\n0-0\n", encoding="utf-8")
    bad = tmp_path / "bad.pharaoh"
    bad.write_text("0-0 1-1\n0-5\n0-0\n", encoding="utf-8")
    base = dict(file=str(corpus), format="bar", src_lang="es", tgt_lang="en")
    args, d = cao_config(tmp_path, train_data=[dict(base, alignments=str(short))])
    with pytest.raises(DataFormatError, match=r"alignment file ends at line 2") as err:
        _first_batch(args, d)
    assert str(err.value).startswith(f"{short}:3:")
    args, d = cao_config(tmp_path, train_data=[dict(base, alignments=str(bad))])
    with pytest.raises(DataFormatError, match=r"target index 5") as err:
        _first_batch(args, d)
    assert str(err.value).startswith(f"{bad}:2:")


def test_streaming_refuses_sources_it_cannot_stream(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("src\ttgt\nuno\tone\n", encoding="utf-8")
    args, _ = cao_config(tmp_path, train_data=[dict(file=str(tsv), src_lang="es", tgt_lang="en",
                                                    alignments=str(tsv))])
    with pytest.raises(ConfigError, match=r"streaming reads files of the forms.*not 'tsv'"):
        build_streaming_dataset(args, mbert_tokenizer())
    with pytest.raises(ConfigError, match=r"eval_split_size: cannot hold pairs out of a stream"):
        cao_config(tmp_path, eval_split_size=0.1)


# ------------------------------------------------------------------------------- one reader for both data paths
def _lines_source(tmp, src, tgt, links=None, **fields):
    (tmp / "c.es").write_bytes(src if isinstance(src, bytes) else src.encode("utf-8"))
    (tmp / "c.en").write_text(tgt, encoding="utf-8")
    if links is not None:
        (tmp / "c.pharaoh").write_text(links, encoding="utf-8")
        fields["alignments"] = str(tmp / "c.pharaoh")
    return ParallelSource(src_file=str(tmp / "c.es"), tgt_file=str(tmp / "c.en"), **fields)


def _file_source(tmp, name, text, **fields):
    (tmp / name).write_text(text, encoding="utf-8")
    return ParallelSource(file=str(tmp / name), src_lang="es", tgt_lang="en", **fields)


_GOOD = "uno dos\ntres\ncuatro\n", "one two\nthree\nfour\n"
PARITY_CASES = {
    "kept rows: empty side, too long, dedup hit, links": lambda t: _lines_source(
        t, "uno dos\n\nuno dos tres cuatro cinco\nHola  MUNDO\nfin\n", "one two\nzero\nfive words a b c\nhello\nend\n",
        "0-0 1-1\n\n0-0\n0-0\n0-0\n"),
    "max_pairs stops before a bad line": lambda t: _file_source(t, "p.txt", "uno ||| one\ndos ||| two\nbad\n",
                                                                max_pairs=2),
    "src file longer": lambda t: _lines_source(t, _GOOD[0] + "cinco\n", _GOOD[1]),
    "tgt file longer": lambda t: _lines_source(t, _GOOD[0], _GOOD[1] + "five\nsix\n"),
    "line counts differ, then bad links": lambda t: _lines_source(t, _GOOD[0] + "cinco\n", _GOOD[1], "0-0 5-5\n"),
    "invalid UTF-8": lambda t: _lines_source(t, b"uno\ncaf\xe9\ntres\n", _GOOD[1]),
    "empty files": lambda t: _lines_source(t, "", ""),
    "bad bar line": lambda t: _file_source(t, "p.txt", "uno ||| one\ndos | two\n"),
    "two bar separators": lambda t: _file_source(t, "p.txt", "uno ||| one ||| x\n"),
    "malformed jsonl": lambda t: _file_source(t, "p.jsonl", '{"src": "uno", "tgt": "one"}\n{"src": "dos",\n'),
    "blank jsonl line": lambda t: _file_source(t, "p.jsonl", '{"src": "uno", "tgt": "one"}\n\n'),
    "jsonl missing column": lambda t: _file_source(t, "p.jsonl", json.dumps({"src": "uno", "target": "one"}) + "\n"),
    "jsonl non-text column": lambda t: _file_source(t, "p.jsonl", json.dumps({"src": "uno", "tgt": 1}) + "\n"),
    "link out of range": lambda t: _lines_source(t, *_GOOD, "0-0 1-1\n0-3\n0-0\n"),
    "malformed link": lambda t: _lines_source(t, *_GOOD, "0-0\nx-y\n0-0\n"),
    "possible link": lambda t: _lines_source(t, *_GOOD, "0-0\n0p0\n0-0\n"),
    "alignment file short": lambda t: _lines_source(t, *_GOOD, "0-0\n"),
    "alignment file long": lambda t: _lines_source(t, *_GOOD, "0-0\n0-0\n0-0\n0-0\n"),
    "one-based link 0": lambda t: _lines_source(t, *_GOOD, "1-1\n0-0\n1-1\n", alignments_one_based=True),
}


def _read_both(source, max_words, dedup_texts):
    """What the map-style and the streaming path make of ``source``: kept rows, or the error type and message."""
    dedup = {normalize_for_dedup(t) for t in dedup_texts} - {""}
    readers = {"eager": lambda: load_parallel(source, max_words=max_words, dedup_texts=dedup_texts).to_list(),
               "streaming": lambda: list(iter_source_rows(source, max_words=max_words, dedup=dedup))}
    results = {}
    for name, read in readers.items():
        try:
            results[name] = read()
        except (DataFormatError, ConfigError) as err:
            results[name] = (type(err).__name__, str(err))
    return results


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_eager_and_streaming_read_the_same_rows_and_errors(case, tmp_path):
    results = _read_both(PARITY_CASES[case](tmp_path), max_words=4, dedup_texts=["hola mundo"])
    assert results["eager"] == results["streaming"]
    if case.startswith("kept rows"):
        assert [(r["line"], r["links"]) for r in results["eager"]] == [(1, [[0, 0], [1, 1]]), (5, [[0, 0]])]
    elif case.startswith("max_pairs"):
        assert [r["src"] for r in results["eager"]] == ["uno", "dos"]
    else:
        assert isinstance(results["eager"], tuple), results["eager"]
        assert results["eager"][0] in ("DataFormatError", "AlignmentIndexError") and ":" in results["eager"][1]
