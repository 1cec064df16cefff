"""The mini multilingual BERT (issue 10): corpus building, vocabulary pruning, the masked-only MLM loss, the
committed model, and the comparison recipe's aggregation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

from amber_align.tokenization import load_mbert_tokenizer
from amber_align.tasks.retrieval import tatoeba_code
from helpers import load_recipe

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "mini-mbert-cpu"
VOCAB = REPO / "tests" / "fixtures" / "mbert-cased-vocab.txt.xz"

prune_vocab = load_recipe("recipes/pretrain_mini_mbert/prune_vocab.py")
pretrain = load_recipe("recipes/pretrain_mini_mbert/pretrain.py")
build_corpus = load_recipe("recipes/pretrain_mini_mbert/build_corpus.py")
compare = load_recipe("recipes/comparison/compare.py")

SENTENCES = ["Der Hund schläft unter dem Tisch.", "The dog sleeps under the table.",
             "Le chien dort sous la table.", "Собака спит под столом.", "狗在桌子下面睡觉。", "1984 war ein Jahr."]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pruned")
    corpus = out / "mono.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    counts = prune_vocab.count_pieces(load_mbert_tokenizer(VOCAB), [corpus])
    prune_vocab.prune(VOCAB, counts, out)
    return out


def test_pruned_vocab_segments_the_corpus_exactly_like_mbert(pruned):
    vocab = (pruned / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    ids = [int(x) for x in (pruned / "mbert_ids.txt").read_text().split()]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == len(ids) < 200
    assert ids == sorted(ids) and ids[:5] == [0, 100, 101, 102, 103]
    assert prune_vocab.check_same_segmentation(VOCAB, pruned / "vocab.txt", pruned / "mbert_ids.txt", SENTENCES) == 0
    # text outside the corpus is not guaranteed to segment the same: that is what the mapping documents
    assert prune_vocab.check_same_segmentation(VOCAB, pruned / "vocab.txt", pruned / "mbert_ids.txt",
                                               ["Xylophone quartz"]) == 1


def test_sampling_counts_follow_smoothed_sizes():
    counts = pretrain.sampling_counts({"en": 10000, "sw": 100}, 1010, alpha=0.5)
    # weights 100 and 10 -> 1010 * 100/110 = 918.18, 1010 * 10/110 = 91.8
    assert counts == {"en": 918, "sw": 92}
    assert pretrain.sampling_counts({"en": 10000, "sw": 100}, 1010, alpha=1.0) == {"en": 1000, "sw": 10}


def test_masked_only_loss_equals_the_full_mlm_loss(pruned):
    tokenizer = load_mbert_tokenizer(pruned / "vocab.txt")
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64)).eval()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5)
    batch = collator([tokenizer(s) for s in SENTENCES])
    full = model(**batch).loss
    trainer = object.__new__(pretrain.MaskedLMTrainer)
    trainer.mlm_loss = pretrain.TranslationLanguageModelingLoss(1.0, name="mlm")
    ours = pretrain.MaskedLMTrainer.compute_loss(trainer, model, dict(batch))
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)


def test_build_corpus_drops_evaluation_sentences(tmp_path):
    data = tmp_path / "data"
    opus = data / "parallel" / "opus_mt_testsets" / "eng-deu"
    opus.mkdir(parents=True)
    (opus / "t.eng").write_text("Hello there.\nI like tea.\nA unique line.\nI like tea.\n", encoding="utf-8")
    (opus / "t.deu").write_text("Hallo.\nIch mag Tee.\nEine Zeile.\nIch mag Tee.\n", encoding="utf-8")
    tatoeba = data / "xsr" / "tatoeba"
    tatoeba.mkdir(parents=True)
    (tatoeba / "tatoeba.deu-eng.eng").write_text("hello   THERE.\n", encoding="utf-8")
    (tatoeba / "tatoeba.deu-eng.deu").write_text("Guten Tag.\n", encoding="utf-8")
    stats = build_corpus.build(data, tmp_path / "out", heldout=0, seed=0)
    assert stats["excluded_pairs"] == {"de": 1}  # normalised match, either side
    de = (tmp_path / "out" / "parallel" / "de-en.de").read_text(encoding="utf-8").split("\n")[:-1]
    assert sorted(de) == ["Eine Zeile.", "Ich mag Tee."]  # the duplicate pair is kept once
    mono = (tmp_path / "out" / "mono" / "en.train.txt").read_text(encoding="utf-8")
    assert "Hello there." not in mono


def test_line_count_mismatch_names_the_file(tmp_path):
    (tmp_path / "a.eng").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "a.deu").write_text("eins\n", encoding="utf-8")
    from amber_align.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"a\.eng.*2 lines here but 1 in .*a\.deu"):
        build_corpus._pairs(tmp_path / "a.eng", tmp_path / "a.deu")


@pytest.mark.skipif(not (MODEL / "model.safetensors").exists(), reason="the committed mini mBERT is not here")
def test_committed_mini_mbert_loads_plainly_and_fits_the_budget():
    assert (MODEL / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    model = AutoModel.from_pretrained(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    assert type(model).__name__ == "BertModel" and model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    ids = (MODEL / "mbert_ids.txt").read_text().split()
    assert len(ids) == len(tokenizer)
    assert tokenizer.convert_tokens_to_ids("[CLS]") == tokenizer.cls_token_id == 2
    encoded = tokenizer("Der Hund schläft.")["input_ids"]
    assert tokenizer.unk_token_id not in encoded
    card = json.loads((MODEL / "pretraining.json").read_text())
    assert set(card["heldout"]) >= {"en", "de", "zh", "sw"}
    assert all(math.isfinite(v["perplexity"]) for v in card["heldout"].values())


XLMR_MODEL = REPO / "models" / "mini-xlmr-cpu"


@pytest.mark.skipif(not (XLMR_MODEL / "model.safetensors").exists(), reason="the mini XLM-R is not committed yet")
def test_committed_mini_xlmr_loads_plainly_and_fits_the_budget():
    assert (XLMR_MODEL / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    model = AutoModel.from_pretrained(XLMR_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(XLMR_MODEL)
    assert type(model).__name__ == "XLMRobertaModel" and model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer) == len((XLMR_MODEL / "xlmr_ids.txt").read_text().split())
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.unk_token_id not in tokenizer("Der Hund schläft.")["input_ids"]
    card = json.loads((XLMR_MODEL / "pretraining.json").read_text())
    assert card["architecture"] == "XLMRobertaForMaskedLM" and set(card["heldout"]) >= {"en", "de", "zh", "sw"}


def test_comparison_aggregate_mean_and_std(tmp_path):
    for seed, acc in ((0, 40.0), (1, 44.0)):
        scores = {lang: acc for lang in compare.NLI_LANGUAGES}
        compare._write(tmp_path / "results" / "none" / f"nli_seed{seed}.json",
                       {"method": "none", "task": "nli", "seed": seed, "scores": scores})
    xsr = {f"{lang}_{d}": 10.0 for lang in compare.XSR_LANGUAGES for d in ("xx2en", "en2xx")}
    xsr["ar_xx2en"] = 24.0  # avg over the 14 aligned languages: (13 * 10 + 24) / 14 = 11.0
    compare._write(tmp_path / "results" / "none" / "xsr.json", {"method": "none", "task": "xsr", "scores": xsr})
    result = compare.aggregate(tmp_path, ["none"])
    assert result["summary"]["none"]["xsr"] == pytest.approx(11.0)
    assert result["summary"]["none"]["nli"] == pytest.approx(42.0)
    assert result["summary"]["none"]["nli_std"] == pytest.approx(math.sqrt(8.0))
    assert "42.0 ± 2.8" in result["markdown"] and (tmp_path / "comparison.png").exists()


def test_comparison_tables_every_xsr_layer_controls_and_aer(tmp_path):
    layer_scores = {layer: {f"{lang}_{d}": value for lang in ("ar", "de", "ja") for d in ("xx2en", "en2xx")}
                    for layer, value in (("-1", 50.0), ("6", 70.0))}
    layer_scores["-1"]["ja_xx2en"] = 20.0  # the control: not in the aligned average
    compare._write(tmp_path / "results" / "none" / "xsr.json",
                   {"method": "none", "task": "xsr", "scores": layer_scores["-1"], "by_layer": layer_scores,
                    "aligned": ["ar", "de"], "languages": ["ar", "de", "ja"]})
    compare._write(tmp_path / "results" / "none" / "aer.json",
                   {"method": "none", "task": "aer", "layer": 8, "scores": {
                       "en-fr": {"aer": 10.0, "precision": 90.0, "recall": 80.0},
                       "ro-en": {"aer": 30.0, "precision": 70.0, "recall": 60.0}}})
    result = compare.aggregate(tmp_path, ["none"])
    assert result["summary"]["none"] == {"xsr": 50.0, "xsr_layer6": 70.0, "aer": 20.0}
    assert "(last layer, mean pooling)" in result["markdown"] and "(layer 6, mean pooling)" in result["markdown"]
    assert "| none | 50.0 | 50.0 | 20.0 | **50.0** | 50.0 | 20.0 | 50.0 |" in result["markdown"]


def test_prune_refuses_counts_from_another_tokenizer(tmp_path):
    from collections import Counter

    from amber_align.errors import DataFormatError

    with pytest.raises(DataFormatError, match="another tokenizer"):
        prune_vocab.prune(VOCAB, Counter({10 ** 7: 3}), tmp_path / "out")


def test_sanity_gate_reads_perplexity_xsr_and_nli():
    heldout = {"en": {"perplexity": 120.0}, "th": {"perplexity": 900.0}}
    lines = "\n".join(compare.sanity_gate({"none": {"xsr": 5.0, "nli": 35.0}}, {"heldout": heldout}, 69505))
    # gate: 1 % of 69,505 = 695 -> th fails; XSR 5.0 >= 1.0 passes; XNLI 35.0 < 36.0 fails
    assert "worst language th 900" in lines and "FAIL (th)" in lines
    assert "Tatoeba P@1 avg 5.0 (chance 0.1, gate ≥ 1.0): **pass**" in lines
    assert "XNLI accuracy avg 35.0 (chance 33.3, gate ≥ 36.0): **FAIL**" in lines
    assert compare.sanity_gate({}) == []


@pytest.mark.parametrize("argv, message", [
    (["--methods", "none,cao_xyz"], "--methods: unknown ['cao_xyz']"),
    (["--tasks", "xsr,pos"], "--tasks: unknown ['pos']"),
    (["--seeds", "0,one"], "--seeds: expected comma-separated integers, got '0,one'"),
    (["--control_languages", "ja,ar"], "--control_languages: ['ar'] are also aligned"),
    (["--xsr_layers=-1,mid"], "--xsr_layers: expected comma-separated integers, got '-1,mid'"),
    (["--methods", "cao_mean", "--corpus", "no-corpus"], "--corpus: no-corpus/parallel/ar-en.ar not found"),
    (["--methods", "none", "--tasks", "xsr", "--align_languages", "it", "--data", "no-data"],
     "--data: no-data/xsr/tatoeba/tatoeba.ita-eng.ita not found: Tatoeba has no test set for 'it'"),
])
def test_compare_rejects_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_comparison_aggregates_ner_and_qa_by_their_own_metric(tmp_path):
    compare._write(tmp_path / "results" / "none" / "ner_seed0.json",
                   {"method": "none", "task": "ner", "seed": 0, "scores": {"en": 80.0, "es": 30.0, "nl": 40.0}})
    result = compare.aggregate(tmp_path, ["none"])
    assert result["summary"]["none"]["ner"] == pytest.approx(35.0)  # en is the training language: left out
    assert "NER entity F1 (CoNLL-2003 en → CoNLL-2002 es/nl)" in result["markdown"]


def test_length_grouped_sampler_reads_a_plain_length_list(pruned):
    import datasets
    from transformers import TrainingArguments

    tokenizer = load_mbert_tokenizer(pruned / "vocab.txt")
    rows = tokenizer(SENTENCES * 4)
    train = datasets.Dataset.from_dict({**rows, "length": [len(x) for x in rows["input_ids"]]})
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64))
    args = TrainingArguments(output_dir="unused", per_device_train_batch_size=4, report_to="none",
                             train_sampling_strategy="group_by_length", use_cpu=True)
    trainer = pretrain.MaskedLMTrainer(model=model, args=args, train_dataset=train)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler.lengths, list) and sorted(sampler) == list(range(len(train)))


def test_finished_units_are_skipped_on_rerun(tmp_path):
    import argparse

    args = argparse.Namespace(out=tmp_path)
    done = compare._write(tmp_path / "results" / "cao_mean" / "ner_seed1.json",
                          {"method": "cao_mean", "task": "ner", "seed": 1, "scores": {"es": 1.0}})
    # a model path that does not exist: the unit must not train anything, only return the stored result
    assert compare.task_unit("cao_mean", str(tmp_path / "missing"), "ner", 1, args) == done
    assert not list(tmp_path.glob("*.tmp*")) and not (tmp_path / "tmp").exists()


def test_forgetting_is_measured_for_one_fixed_seed_whatever_the_seed_list():
    import argparse

    # a run staged by seeds (--seeds 0, then --seeds 1,2) measures the fine-tuned encoder once, for seed 0
    args = argparse.Namespace(continual_methods={"none", "cao_mean"}, forgetting_seed=0, seeds=[1, 2])
    assert not compare._measures_forgetting("none", "nli", 1, args)
    assert compare._measures_forgetting("none", "nli_continual", 0, args)
    assert not compare._measures_forgetting("amber_sa", "nli", 0, args)
    assert not compare._measures_forgetting("none", "ner", 0, args)


def test_resuming_with_other_settings_is_refused(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    args = argparse.Namespace(out=tmp_path, **{k: 1 for k in compare.SETTINGS})
    compare.check_settings(args, parser)
    compare.check_settings(args, parser)  # same settings: resumes
    args.align_lr = 0.5
    with pytest.raises(SystemExit):
        compare.check_settings(args, parser)
    assert "--align_lr '1' there, '0.5' now" in capsys.readouterr().err


def test_a_task_setting_may_change_until_the_task_has_a_result(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    args = argparse.Namespace(out=tmp_path, **{k: 1 for k in compare.SETTINGS})
    compare.check_settings(args, parser)
    compare._write(tmp_path / "results" / "none" / "xsr.json", {"method": "none"})  # stage (a) ran
    args.nli_lr, args.nli_epochs = 0.5, 3  # stage (b) chooses its own settings: accepted and recorded
    compare.check_settings(args, parser)
    stored = json.loads((tmp_path / "settings.json").read_text())
    assert stored["nli_lr"] == "0.5" and stored["nli_epochs"] == "3"
    compare._write(tmp_path / "results" / "none" / "nli_continual_seed0.json", {"method": "none"})
    args.nli_lr = 0.25  # an NLI result exists now: refused
    with pytest.raises(SystemExit):
        compare.check_settings(args, parser)
    assert "--nli_lr '0.5' there, '0.25' now" in capsys.readouterr().err
    args.nli_lr, args.ner_lr = 0.5, 7  # NER has no result: free
    compare.check_settings(args, parser)
    args.align_lr = 2  # an alignment setting changes every unit: refused
    with pytest.raises(SystemExit):
        compare.check_settings(args, parser)


# ----- the mini XLM-R: the same recipe on the XLM-R Unigram table ---------------------------------------------------
XLMR_TABLE = REPO / "tests" / "fixtures" / "xlmr-vocab.tsv.xz"


@pytest.fixture(scope="module")
def pruned_xlmr(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pruned_xlmr")
    corpus = out / "mono.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    counts = prune_vocab.count_pieces(prune_vocab.load_full(XLMR_TABLE), [corpus])
    prune_vocab.prune(XLMR_TABLE, counts, out / "tokenizer")
    return out / "tokenizer"


def test_pruned_xlmr_table_segments_the_corpus_exactly_like_xlmr(pruned_xlmr):
    rows = [line.split("\t") for line in (pruned_xlmr / "vocab.tsv").read_text(encoding="utf-8").split("\n")[:-1]]
    ids = [int(x) for x in (pruned_xlmr / "xlmr_ids.txt").read_text().split()]
    assert [int(r[0]) for r in rows] == list(range(len(rows))) and len(rows) == len(ids) < 200
    assert [r[1] for r in rows[:4]] == ["<s>", "<pad>", "</s>", "<unk>"] and rows[-1][1] == "<mask>"
    assert ids[:4] == [0, 1, 2, 3] and ids[-1] == 250001 and ids == sorted(ids)
    assert rows[4][2] == repr(float(rows[4][2]))  # scores copied digit for digit
    assert prune_vocab.check_same_segmentation(XLMR_TABLE, pruned_xlmr / "vocab.tsv", pruned_xlmr / "xlmr_ids.txt",
                                               SENTENCES) == 0
    assert pretrain.is_xlmr(pruned_xlmr)
    tokenizer = pretrain.load_pretraining_tokenizer(pruned_xlmr)
    assert len(tokenizer) == len(rows) and tokenizer.mask_token_id == len(rows) - 1


def test_min_count_drops_rare_xlmr_pieces_and_words_fall_back(pruned_xlmr, tmp_path):
    from collections import Counter

    corpus = pruned_xlmr.parent / "mono.txt"
    doubled = tmp_path / "mono.txt"
    doubled.write_text(corpus.read_text(encoding="utf-8") + SENTENCES[0] + "\n", encoding="utf-8")
    counts = prune_vocab.count_pieces(prune_vocab.load_full(XLMR_TABLE), [doubled])
    _, size = prune_vocab.prune(XLMR_TABLE, counts, tmp_path / "tok", min_count=2)
    assert size == 5 + sum(1 for i, n in counts.items() if n >= 2 and i not in (0, 1, 2, 3, 250001))
    assert 5 < size < len(prune_vocab.load_full(tmp_path / "tok" / "vocab.tsv")) + 1
    # the German sentence was seen twice: its pieces survive; the French one (seen once) is segmented otherwise
    same = [prune_vocab.check_same_segmentation(XLMR_TABLE, tmp_path / "tok" / "vocab.tsv",
                                                tmp_path / "tok" / "xlmr_ids.txt", [line]) for line in SENTENCES[:3]]
    assert same == [0, 1, 1] and isinstance(counts, Counter)


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_masked_only_loss_and_final_save_for_both_architectures(kind, pruned, pruned_xlmr, tmp_path):
    """The masked-positions-only loss equals the model's own MLM loss; the final save stores tied weights once,
    loads with AutoModel as the plain encoder and reloads the MLM model with the same predictions."""
    import argparse

    from safetensors import safe_open
    from transformers import AutoModelForMaskedLM

    folder = pruned if kind == "mbert" else pruned_xlmr
    tokenizer = pretrain.load_pretraining_tokenizer(folder)
    args = argparse.Namespace(hidden=32, layers=2, heads=2, max_positions=64, out=tmp_path / "run", tokenizer=folder)
    torch.manual_seed(0)
    config = pretrain.mini_config(tokenizer, args, xlmr=kind == "xlmr")
    assert config.pad_token_id == tokenizer.pad_token_id
    model = (pretrain.XLMRobertaForMaskedLM if kind == "xlmr" else BertForMaskedLM)(config).eval()
    batch = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5)([tokenizer(s) for s in SENTENCES])
    full = model(**batch).loss
    trainer = object.__new__(pretrain.MaskedLMTrainer)
    trainer.mlm_loss = pretrain.TranslationLanguageModelingLoss(1.0, name="mlm")
    torch.testing.assert_close(pretrain.MaskedLMTrainer.compute_loss(trainer, model, dict(batch)), full,
                               rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a trained-looking decoder bias, so that a lost bias tie would show
        (model.cls.predictions.bias if kind == "mbert" else model.lm_head.bias).normal_()
    trainer.model = model
    heldout = {"en": {"mlm_loss": 1.0, "perplexity": 2.7, "masked_tokens": 9}}
    extra = {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "alpha": 0.7, "max_length": 16, "min_count": 1,
             "encoder_parameters": 1, "train_runtime_s": 1.0, "final_train_loss": 1.0, "device": "cpu",
             "torch_threads": 1, "mixing": {"en": {"sentences": 6, "epochs": 1.0}}, "heldout": heldout}
    pretrain.save_final(trainer, tokenizer, args, extra)
    final = args.out / "final"
    with safe_open(final / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert not keys & set(model._tied_weights_keys)
    ids = "xlmr_ids.txt" if kind == "xlmr" else "mbert_ids.txt"
    assert (final / ids).is_file()
    encoder = AutoModel.from_pretrained(final)
    assert type(encoder).__name__ == ("XLMRobertaModel" if kind == "xlmr" else "BertModel")
    reloaded = AutoModelForMaskedLM.from_pretrained(final).eval()
    plain = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**plain).logits, model.half().float()(**plain).logits,
                                   rtol=1e-4, atol=1e-4)
    card = (final / "README.md").read_text(encoding="utf-8")
    assert ("# mini XLM-R" if kind == "xlmr" else "# mini multilingual BERT") in card


def test_pretraining_needs_a_pruned_tokenizer_folder(tmp_path):
    from amber_align.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"empty.*expected vocab\.tsv .* or vocab\.txt"):
        pretrain.load_pretraining_tokenizer(tmp_path / "empty")


def test_run_script_refuses_an_unknown_architecture():
    import subprocess

    done = subprocess.run(["bash", str(REPO / "recipes" / "pretrain_mini_mbert" / "run.sh")], env={"ARCH": "roberta",
                          "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 2 and "ARCH must be mbert or xlmr, got 'roberta'" in done.stderr


def test_training_summary_spans_a_resumed_run():
    # The Trainer's training_loss/train_runtime cover only the segment after a resume; log_history (restored from
    # the checkpoint) covers the whole run: mean of 8, 6, 4 = 6.0, the last 4.0, resumed at step 3000.
    history = [{"loss": 8.0, "step": 50}, {"loss": 6.0, "step": 3000}, {"eval": 1}, {"loss": 4.0, "step": 6000},
               {"train_runtime": 1442.0, "train_loss": 2.5}]
    summary = pretrain.training_summary(history, {"train_runtime": 1442.04}, resumed_from="out/model/checkpoint-3000")
    assert summary == {"final_train_loss": 6.0, "last_logged_loss": 4.0, "train_runtime_s": 1442.0,
                       "resumed_from_step": 3000}
    assert pretrain.training_summary([], {}, None)["resumed_from_step"] == 0


def test_a_staged_run_tabulates_every_method_with_results(tmp_path, capsys):
    # Stage 1 left cao_mean's NLI; stage 2 runs --methods none (its XSR already done, so nothing trains): the
    # tables must still list cao_mean, not only the last stage's methods.
    xsr = {f"{lang}_{d}": 1.0 for lang in compare.XSR_LANGUAGES for d in ("xx2en", "en2xx")}
    compare._write(tmp_path / "results" / "none" / "xsr.json", {"method": "none", "task": "xsr", "scores": xsr})
    compare._write(tmp_path / "results" / "cao_mean" / "nli_seed0.json",
                   {"method": "cao_mean", "task": "nli", "seed": 0,
                    "scores": {lang: 40.0 for lang in compare.NLI_LANGUAGES}})
    tatoeba = tmp_path / "data" / "xsr" / "tatoeba"  # the input check needs the Tatoeba files, not the research data
    tatoeba.mkdir(parents=True)
    for lang in compare.XSR_LANGUAGES:
        code = tatoeba_code(lang)
        for side in (code, "eng"):
            (tatoeba / f"tatoeba.{code}-eng.{side}").write_text("x\n")
    compare.main(["--methods", "none", "--tasks", "xsr", "--out", str(tmp_path), "--model", str(tmp_path / "m"),
                  "--data", str(tmp_path / "data")])
    summary = json.loads((tmp_path / "comparison.json").read_text())["summary"]
    assert summary == {"none": {"xsr": 1.0}, "cao_mean": {"nli": 40.0, "nli_std": 0.0, "nli_seeds": 1,
                                                          "nli_gap": 0.0, "nli_gap_std": 0.0}}
    assert "| cao_mean | 1 |" in (tmp_path / "comparison.md").read_text()


def test_the_task_table_gives_the_transfer_gap_per_seed(tmp_path):
    # XTREME's transfer gap, en minus the zero-shot average, per seed: seed 0 en 60 / others 50 (gap 10), seed 1
    # en 66 / others 54 (gap 12) -> 11.0 +- sqrt(2) = 1.4; the averages themselves 52.0 +- 2.8.
    report = load_recipe("recipes/comparison/comparison_report.py")
    for seed, (en, other) in enumerate([(60.0, 50.0), (66.0, 54.0)]):
        scores = {lang: (en if lang == "en" else other) for lang in compare.NLI_LANGUAGES}
        compare._write(tmp_path / "results" / "none" / f"nli_seed{seed}.json",
                       {"method": "none", "task": "nli", "seed": seed, "scores": scores})
    # an alignment's summary copied beside the unit results (as docs/results-e5/ keeps them) is not a result
    compare._write(tmp_path / "results" / "none" / "align_summary.json", {"seconds": 1.0, "last_logged": {}})
    result = report.aggregate(tmp_path, ["none"])
    assert result["summary"]["none"]["nli_gap"] == pytest.approx(11.0)
    assert result["summary"]["none"]["nli_gap_std"] == pytest.approx(2 ** 0.5)
    row = next(line for line in result["markdown"].splitlines() if line.startswith("| none |"))
    assert row.endswith("| **52.0 ± 2.8** | 11.0 ± 1.4 |")
