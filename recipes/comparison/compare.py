"""Every alignment method of the package, from one multilingual encoder, on the same zero-shot benchmarks.

Any encoder: ``--model`` is a local folder, a Hub id (``bert-base-multilingual-cased``) or an offline model
(``offline:e5-small``, converted once by ``amber-align offline-model``). Results: docs/mini_models.md (the mini
mBERT / XLM-R pretrained on CPU), docs/results-e5.md (multilingual-e5-small).

Methods (docs/methods.md; each is ``amber-align align`` on the same parallel data, then the same evaluation):

* ``none``: the pretrained encoder as it is;
* ``cao_last`` / ``cao_mean``: Cao et al. (aligned-word MSE + anchor MSE to the frozen original), the word vector
  is the last subword / the mean of the subwords (Efimov's variant);
* ``amber_sa``: AMBER's sentence alignment alone; ``amber_tlm_wa_sa``: TLM + word-alignment agreement + SA (an
  encoder published without an MLM head, such as e5, gets a fresh head tied to its input embeddings);
* ``cao_sa``: Cao (mean) + SA in one step; ``so``: awesome-align's self-training objective alone (Dou & Neubig
  2021) at the extraction layer;
* ``procrustes``: Wang et al. refinement: an orthogonal map per language fit on eflomal-aligned words of the last
  layer, applied to the foreign side's features (a features-only method: retrieval, not fine-tuning).

Benchmarks: XSR = Tatoeba P@1 (mean pooling, cosine, ``--xsr_layers``) for the aligned languages and the
``--control_languages`` (not aligned); AER = awesome-align's en–fr Hansards and ro–en gold (softmax extraction at
``--aer_layer``); NLI = fine-tune on XNLI-en dev (2,490 pairs), test on the XNLI test sets of every language that
has one, ``--seeds`` fine-tuning seeds, mean ± std; ``nli_continual``: the same with Efimov's continual alignment
loss on during fine-tuning (for the methods in ``--continual_methods``; for those, the fine-tuned encoder of
``--forgetting_seed`` is measured again, Tatoeba and word distances, to show what fine-tuning did to the alignment);
NER = CoNLL-2003 en train → CoNLL-2002 es/nl test (entity F1) and QA = TyDiQA-GoldP en train → XQuAD (F1), for
the methods in ``--task_methods`` (the costlier tasks); ``ner_features`` = Wang et al.'s feature-based NER on the
frozen encoder with and without refinement maps (``wang_ner.py``), for the same methods.

Every unit (a method's alignment, one evaluation) writes its result atomically and is skipped when present, so an
interrupted run resumes where it stopped. At the end: ``comparison.md`` (tables), ``comparison.json`` and plots.

    python recipes/comparison/compare.py --model models/mini-mbert-cpu --out runs/mini_comparison
    python recipes/comparison/compare.py --model offline:e5-small --corpus runs/e5/corpus --out runs/e5_comparison \\
        --tasks xsr,aer --control_languages ja,ko,ro --xsr_layers=-1,6 --aer_layer 8 --align_steps 80 \\
        --pairs_per_language 2 --align_lr 5e-5 --freeze_word_embeddings   # stage (a) of docs/results-e5.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from amber_align.config_io import build_config
from amber_align.io_utils import atomic_write_text
from amber_align.logging_utils import get_logger

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_settings import SETTINGS, check_settings  # noqa: E402,F401  (SETTINGS: re-exported for the tests)
from comparison_report import (ALIGN_LANGUAGES, NER_LANGUAGES, NLI_LANGUAGES, PRIMARY, QA_LANGUAGES,  # noqa: E402
                               TASKS, TITLES, XSR_LANGUAGES, aggregate, sanity_gate)

__all__ = ["METHODS", "ALIGN_LANGUAGES", "XSR_LANGUAGES", "NLI_LANGUAGES", "NER_LANGUAGES", "QA_LANGUAGES",
           "TITLES", "PRIMARY", "TASKS", "align_method", "xsr_unit", "aer_unit", "task_unit", "ner_features_unit",
           "aggregate", "sanity_gate", "main", "run"]

logger = get_logger(__name__)

_SA = {"sa_weight": 1.0, "sa_similarity": "cosine", "sa_temperature": 0.05, "sa_symmetric": True}
# Method -> alignment config fields (on top of the common ones in align_method); None = no alignment training.
METHODS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "cao_last": {"method": "cao", "pooling": "last", "anchor": "frozen"},
    "cao_mean": {"method": "cao", "pooling": "mean", "anchor": "frozen"},
    "amber_sa": {"method": "amber", "mlm_weight": 0.0, "tlm_weight": 0.0, "wa_weight": 0.0, **_SA},
    "amber_tlm_wa_sa": {"method": "amber", "mlm_weight": 0.0, "tlm_weight": 1.0, "wa_weight": 1.0, **_SA},
    "cao_sa": {"method": "amber", "mlm_weight": 0.0, "tlm_weight": 0.0, "wa_weight": 0.0, **_SA, "cao_weight": 1.0,
               "anchor": "frozen", "pooling": "mean"},
    "so": {"method": "amber", "mlm_weight": 0.0, "tlm_weight": 0.0, "wa_weight": 0.0, "sa_weight": 0.0,
           "so_weight": 1.0, "so_guide": "self"},
    "procrustes": None,
}


def resolve_model(model: str) -> str:
    """``offline:NAME`` -> its converted folder; a folder or Hub id unchanged."""
    from amber_align.offline_models import resolve_offline_name

    return str(resolve_offline_name(str(model)))


def _num_layers(model: str) -> int:
    from amber_align.modeling import load_model_config

    return int(load_model_config(model).num_hidden_layers)


def aer_layer(args: argparse.Namespace) -> int:
    """``--aer_layer``, or awesome-align's layer 8 of 12 scaled to the model's depth."""
    return args.aer_layer if args.aer_layer is not None else round(_num_layers(args.model) * 2 / 3)


def _sources(corpus: Path, max_pairs: int, languages: tuple[str, ...] = ALIGN_LANGUAGES) -> list[dict[str, Any]]:
    return [{"src_file": str(corpus / "parallel" / f"{lang}-en.{lang}"),
             "tgt_file": str(corpus / "parallel" / f"{lang}-en.en"), "src_lang": lang, "tgt_lang": "en",
             "max_pairs": max_pairs} for lang in languages]


def _done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _write(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return payload


def align_method(name: str, args: argparse.Namespace) -> str:
    """Directory of the model ``name`` evaluates (aligned once; reused when ``model.safetensors`` exists)."""
    fields = METHODS[name]
    if fields is None:
        return str(args.model)
    out = args.out / "models" / name
    if (out / "model.safetensors").exists():
        return str(out)
    from amber_align.pipeline import resolve_checkpoint, run_alignment

    values = {**fields, "model_name_or_path": str(args.model), "output_dir": str(out),
              "train_data": _sources(args.corpus, args.max_pairs, args.align_languages),
              "alignment_cache_dir": str(args.out / "links"),
              "max_steps": args.align_steps, "per_device_train_batch_size": args.pairs_per_language,
              "learning_rate": args.align_lr, "lr_scheduler_type": "linear", "warmup_steps": 0.1,
              "logging_steps": 10, "save_steps": 50, "save_total_limit": 1, "seed": args.align_seed,
              "report_to": "none", "disable_tqdm": True, "freeze_word_embeddings": args.freeze_word_embeddings,
              # an interrupted alignment resumes from its newest complete checkpoint
              "resume_from_checkpoint": resolve_checkpoint(True, out, required=False)}
    if fields.get("so_weight"):
        values["so_layer"] = aer_layer(args)
    started = time.time()
    trainer = run_alignment(build_config(values, source=f"method {name}"))
    parts = {k: v for entry in trainer.state.log_history for k, v in entry.items() if k not in ("step", "epoch")}
    _write(out / "align_summary.json", {"seconds": round(time.time() - started, 1), "last_logged": parts})
    return str(out)


def xsr_scores(model: Any, tokenizer: Any, args: argparse.Namespace,
               maps: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, float]]:
    """Tatoeba P@1 ``{layer: {lang_xx2en, lang_en2xx}}`` over the aligned and control languages, every layer of
    ``--xsr_layers`` from one encoding; ``maps`` (Procrustes) map the foreign side at the last layer."""
    from amber_align.tasks.retrieval import encode_sentences_at_layers, read_tatoeba, retrieval_accuracy

    by_layer: dict[str, dict[str, float]] = {str(layer): {} for layer in args.xsr_layers}
    for lang in args.align_languages + args.control_languages:
        xx, en = read_tatoeba(args.data / "xsr" / "tatoeba", lang)
        xx_emb = encode_sentences_at_layers(model, tokenizer, xx, args.xsr_layers)
        en_emb = encode_sentences_at_layers(model, tokenizer, en, args.xsr_layers)
        for layer in args.xsr_layers:
            x, e = xx_emb[layer], en_emb[layer]
            if maps and lang in maps and layer == -1:
                x = x @ maps[lang]
            scores = by_layer[str(layer)]
            scores[f"{lang}_xx2en"] = round(100.0 * retrieval_accuracy(x, e, target_texts=en), 2)
            scores[f"{lang}_en2xx"] = round(100.0 * retrieval_accuracy(e, x, target_texts=xx), 2)
    return by_layer


def xsr_unit(name: str, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tatoeba P@1 per language (both directions, every ``--xsr_layers``) for one method; Procrustes maps the
    foreign side (last layer)."""
    path = args.out / "results" / name / "xsr.json"
    if (done := _done(path)) is not None:
        return done
    from amber_align.modeling import load_encoder, load_tokenizer

    model, tokenizer = load_encoder(model_dir), load_tokenizer(model_dir)
    maps = _procrustes_maps(model, tokenizer, args) if name == "procrustes" else {}
    by_layer = xsr_scores(model, tokenizer, args, maps)
    return _write(path, {"method": name, "task": "xsr", "scores": by_layer[str(args.xsr_layers[0])],
                         "by_layer": by_layer, "aligned": list(args.align_languages),
                         "languages": list(args.align_languages + args.control_languages)})


def _procrustes_maps(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """One orthogonal map per aligned language, last layer, all words mapped (tau None), eflomal gdfa links."""
    from amber_align.diagnostics.run import linked_pairs
    from amber_align.refinement.wang import fit_refinement

    last = model.config.num_hidden_layers
    maps = {}
    for source in _sources(args.corpus, args.max_pairs, args.align_languages):
        pairs = linked_pairs(source, tokenizer, options={"symmetrization": "grow-diag-final-and",
                                                          "alignment_cache_dir": str(args.out / "links")})
        fitted = fit_refinement(model, tokenizer, pairs, layers=(last,), method="orthogonal", tau=None)
        maps[source["src_lang"]] = fitted.maps[last].float()
    return maps


# awesome-align's gold sets (../shared/data/word_alignment/awesome-align): name -> file prefix
AER_GOLD = {"en-fr": "enfr", "ro-en": "roen"}


def aer_unit(name: str, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """AER, precision and recall of softmax extraction (threshold 1e-3, awesome-align's default) at ``--aer_layer``
    on the en–fr and ro–en gold sets, for one method's encoder."""
    path = args.out / "results" / name / "aer.json"
    if (done := _done(path)) is not None:
        return done
    from amber_align.data.aer import alignment_scores
    from amber_align.data.alignments import read_gold_alignments
    from amber_align.extraction import WordAligner
    from amber_align.io_utils import read_text_lines

    layer = aer_layer(args)
    aligner = WordAligner.from_pretrained(model_dir, layer=layer, method="softmax", batch_size=32)
    scores = {}
    for gold_name, prefix in AER_GOLD.items():
        base = args.data / "word_alignment" / "awesome-align"
        lines = read_text_lines(base / f"{prefix}.src-tgt")[0]
        src = [line.split("|||")[0].split() for line in lines]
        tgt = [line.split("|||")[1].split() for line in lines]
        sure, possible = read_gold_alignments(base / f"{prefix}.gold", one_based=True)
        result = alignment_scores(aligner.align(src, tgt, pretokenized=True), sure, possible)
        scores[gold_name] = {k: round(100.0 * float(v), 2) for k, v in result.items()}
    return _write(path, {"method": name, "task": "aer", "layer": layer, "scores": scores})


# Fine-tuning tasks: English training data, evaluation sets per language (paths under --data), config fields.
def _task_values(task: str, args: argparse.Namespace) -> dict[str, Any]:
    data = args.data
    if task in ("nli", "nli_continual"):
        nli = data / "nli"
        return {"task": "nli", "train_data": str(nli / "xnli_xtreme" / "dev-en.tsv"),
                "eval_data": {lang: str(nli / "xnli_test_labeled_derived" / f"test-{lang}.tsv")
                              for lang in NLI_LANGUAGES},
                "max_seq_length": 128, "learning_rate": args.nli_lr, "num_train_epochs": args.nli_epochs,
                "max_eval_examples": args.nli_eval_examples}
    if task == "ner":  # CoNLL-2003 en -> CoNLL-2002 es/nl (same PER/LOC/ORG/MISC tags)
        conll = data / "ner" / "conll_yuto16"
        return {"task": "ner", "train_data": str(conll / "conll2003" / "eng.train"),
                "eval_data": {"en": str(conll / "conll2003" / "eng.testb"),
                              "es": str(conll / "conll2002" / "esp.testb"),
                              "nl": str(conll / "conll2002" / "ned.testb")},
                "max_seq_length": 128, "learning_rate": args.ner_lr, "num_train_epochs": args.ner_epochs,
                "max_train_examples": args.ner_train_examples}
    qa = data / "qa"  # TyDiQA-GoldP en train -> XQuAD
    from amber_align.modeling import load_model_config, max_sequence_length

    # 384-subword windows (Efimov et al.), or the model's positions when it has fewer (the mini model: 256)
    window = min(384, max_sequence_length(load_model_config(args.model)))
    return {"task": "qa", "train_data": {"file": str(qa / "tydiqa_goldp" / "tydiqa.goldp.en.train.json"),
                                         "on_duplicate_id": "rename"},
            "eval_data": {lang: str(qa / "xquad" / f"xquad.{lang}.json") for lang in QA_LANGUAGES},
            "max_seq_length": window, "doc_stride": 128, "max_answer_length": 30, "qa_normalization": "auto",
            "learning_rate": args.qa_lr, "num_train_epochs": args.qa_epochs}


def task_unit(name: str, model_dir: str, task: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Zero-shot scores per language (accuracy for NLI, entity F1 for NER, F1 for QA) for one method and seed;
    ``nli_continual`` keeps Efimov's continual alignment loss on while the NLI head trains. For the
    ``--continual_methods`` (NLI only, ``--forgetting_seed``) the fine-tuned encoder is kept until
    ``forgetting_unit`` has measured its alignment."""
    path = args.out / "results" / name / f"{task}_seed{seed}.json"
    if (done := _done(path)) is not None:
        return done
    from amber_align.tasks.config import TaskConfig
    from amber_align.tasks.runner import run_finetune

    measure = _measures_forgetting(name, task, seed, args)
    output_dir = args.out / "tmp" / f"{name}_{task}_{seed}"
    values: dict[str, Any] = {
        **_task_values(task, args), "model_name_or_path": model_dir, "output_dir": str(output_dir),
        "overwrite_output_dir": True, "per_device_train_batch_size": 32, "per_device_eval_batch_size": 128,
        "lr_scheduler_type": "linear", "warmup_steps": 0.1, "save_strategy": "no", "save_model": measure,
        "seed": seed, "report_to": "none", "disable_tqdm": True, "logging_steps": 50,
    }
    if task == "nli_continual":
        values.update({"continual_alignment": True,
                       "continual_data": _sources(args.corpus, args.max_pairs, args.align_languages),
                       "continual_anchor_model": str(args.model), "continual_pool_size": 30000,
                       "continual_batch_size": 16, "link_weight": 0.01, "anchor_weight": 1.0,
                       "continual_options": {"alignment_cache_dir": str(args.out / "links")}})
    started = time.time()
    report = run_finetune(build_config(values, source=f"{name} {task}", config_class=TaskConfig))
    metric = PRIMARY[task]
    scores = {lang: float(metrics[metric]) for lang, metrics in report["per_language"].items() if metric in metrics}
    if measure:
        forgetting_unit(name, model_dir, str(output_dir), task, seed, args)
        shutil.rmtree(output_dir, ignore_errors=True)
    return _write(path, {"method": name, "task": task, "seed": seed, "metric": metric, "scores": scores,
                         "seconds": round(time.time() - started, 1)})


def ner_features_unit(name: str, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """Wang et al.'s own measurement (``wang_ner.py``): feature-based zero-shot NER on the frozen encoder, the
    ``--ner_seeds``, with and without refinement maps for the NER languages that have parallel data."""
    path = args.out / "results" / name / "ner_features.json"
    if (done := _done(path)) is not None:
        return done
    from wang_ner import feature_ner_scores

    files = _task_values("ner", args)
    mapped = [lang for lang in files["eval_data"] if lang in args.align_languages]
    started = time.time()
    scores = feature_ner_scores(model_dir, files["train_data"], files["eval_data"],
                                _sources(args.corpus, args.max_pairs, tuple(mapped)), seeds=args.ner_seeds,
                                max_train_examples=args.ner_train_examples, links_dir=str(args.out / "links"))
    return _write(path, {"method": name, **scores, "seconds": round(time.time() - started, 1)})


def _measures_forgetting(name: str, task: str, seed: int, args: argparse.Namespace) -> bool:
    return task in ("nli", "nli_continual") and name in args.continual_methods and seed == args.forgetting_seed


# Word distances (Efimov et al. 2022) before and after fine-tuning: this language's first pairs of the corpus.
DISTANCE_LANGUAGE, DISTANCE_PAIRS = "de", 500


def _word_distances(model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    from amber_align.diagnostics.distances import word_pair_distances
    from amber_align.diagnostics.run import linked_pairs
    from amber_align.diagnostics.word_vectors import aligned_word_vectors
    from amber_align.modeling import load_encoder, load_tokenizer

    model, tokenizer = load_encoder(model_dir), load_tokenizer(model_dir)
    source = _sources(args.corpus, DISTANCE_PAIRS, (DISTANCE_LANGUAGE,))[0]
    pairs = linked_pairs(source, tokenizer, options={"alignment_cache_dir": str(args.out / "links")})
    vectors = aligned_word_vectors(model, tokenizer, pairs, layers=(-1,))
    result = word_pair_distances(vectors, -1, seed=0)
    return {key: float(result[key].mean()) for key in ("related", "unrelated", "difference")}


def forgetting_unit(name: str, model_dir: str, tuned_dir: str, task: str, seed: int,
                    args: argparse.Namespace) -> dict[str, Any]:
    """The alignment of the encoder before (``model_dir``) and after fine-tuning (``tuned_dir``): Tatoeba avg of
    the aligned languages per ``--xsr_layers`` and the related / unrelated word distances (last layer)."""
    path = args.out / "results" / name / f"forgetting_{task}_seed{seed}.json"
    if (done := _done(path)) is not None:
        return done
    from amber_align.modeling import load_encoder, load_tokenizer

    def average(by_layer: dict[str, dict[str, float]]) -> dict[str, float]:
        return {layer: round(statistics.fmean(s[f"{lang}_xx2en"] for lang in args.align_languages), 2)
                for layer, s in by_layer.items()}

    def xsr_avg(folder: str) -> dict[str, float]:
        return average(xsr_scores(load_encoder(folder), load_tokenizer(folder), args))

    before = _done(args.out / "results" / name / "xsr.json")  # the method's own XSR unit, when it has run
    xsr_before = average(before["by_layer"]) if before and "by_layer" in before else xsr_avg(model_dir)
    return _write(path, {"method": name, "task": task, "seed": seed, "xsr_before": xsr_before,
                         "xsr_after": xsr_avg(tuned_dir), "distances_before": _word_distances(model_dir, args),
                         "distances_after": _word_distances(tuned_dir, args), "distance_layer": "last",
                         "distance_language": DISTANCE_LANGUAGE, "distance_pairs": DISTANCE_PAIRS})


def _ints(parser: argparse.ArgumentParser, flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--{flag}: expected comma-separated integers, got {text!r}")


def check_inputs(args: argparse.Namespace, tasks: set[str], methods: list[str],
                 parser: argparse.ArgumentParser) -> None:
    """Refuse, before any alignment trains, a language whose corpus or Tatoeba files are missing (exit 2, one
    line naming the file), so that a long run never fails at its first evaluation."""
    from amber_align.errors import AmberAlignError
    from amber_align.tasks.retrieval import tatoeba_code

    if any(METHODS[m] is not None or m == "procrustes" for m in methods) or tasks & {"nli_continual", "ner_features"}:
        for source in _sources(args.corpus, args.max_pairs, args.align_languages):
            for key in ("src_file", "tgt_file"):
                if not Path(source[key]).is_file():
                    parser.error(f"--corpus: {source[key]} not found (--align_languages {source['src_lang']})")
    if "xsr" in tasks:
        tatoeba = args.data / "xsr" / "tatoeba"
        for lang in args.align_languages + args.control_languages:
            try:
                code = tatoeba_code(lang, tatoeba)
            except AmberAlignError as err:
                parser.error(f"--align_languages/--control_languages: {err}")
            for path in (tatoeba / f"tatoeba.{code}-eng.{code}", tatoeba / f"tatoeba.{code}-eng.eng"):
                if not path.is_file():
                    parser.error(f"--data: {path} not found: Tatoeba has no test set for {lang!r}; leave it out "
                                 f"of --align_languages/--control_languages or drop 'xsr' from --tasks")


def _languages(text: str) -> tuple[str, ...]:
    return tuple(lang.strip() for lang in text.split(",") if lang.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/mini-mbert-cpu",
                        help="a folder, a Hub id or offline:e5-small")
    parser.add_argument("--corpus", type=Path, default=Path("runs/mini_mbert/corpus"),
                        help="build_corpus.py output (parallel/xx-en.*)")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("AMBER_ALIGN_SHARED_DATA",
                                                    Path(__file__).resolve().parents[3] / "shared" / "data")),
                        help="the research data (default: $AMBER_ALIGN_SHARED_DATA, else ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("runs/mini_comparison"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"some of {TASKS}")
    parser.add_argument("--seeds", default="0,1", help="NLI fine-tuning seeds")
    parser.add_argument("--ner_seeds", default="0,1,2")
    parser.add_argument("--qa_seeds", default="0,1")
    parser.add_argument("--continual_methods", default="none,cao_mean")
    parser.add_argument("--forgetting_seed", type=int, default=0,
                        help="the NLI seed whose fine-tuned encoder (--continual_methods) is measured for forgetting; "
                             "fixed, so that a run staged by seeds (--seeds 0, then --seeds 1,2) measures it once")
    parser.add_argument("--task_methods", default="none,cao_mean,amber_sa",
                        help="the methods NER and QA run for (the costlier tasks)")
    parser.add_argument("--align_languages", default=",".join(ALIGN_LANGUAGES),
                        help="the languages aligned to English (corpus parallel/xx-en.*)")
    parser.add_argument("--control_languages", default="ja,ko,ro",
                        help="Tatoeba languages measured but not aligned")
    parser.add_argument("--xsr_layers", default="-1", help="Tatoeba layers (-1 = last), e.g. -1,6")
    parser.add_argument("--aer_layer", type=int, default=None,
                        help="extraction (and SO) layer; default 2/3 of the depth (awesome-align's 8 of 12)")
    parser.add_argument("--max_pairs", type=int, default=5000, help="parallel pairs per language")
    parser.add_argument("--align_steps", type=int, default=300)
    parser.add_argument("--pairs_per_language", type=int, default=4)
    parser.add_argument("--align_lr", type=float, default=1e-4)
    parser.add_argument("--align_seed", type=int, default=42)
    parser.add_argument("--freeze_word_embeddings", action="store_true",
                        help="keep the word embeddings fixed while aligning (the e5 demo does)")
    parser.add_argument("--nli_lr", type=float, default=3e-4)
    parser.add_argument("--nli_epochs", type=float, default=10,
                        help="the CPU-pretrained mini model learns English NLI from 2,490 pairs only in many epochs")
    parser.add_argument("--nli_eval_examples", type=int, default=2000, help="XNLI test pairs per language")
    parser.add_argument("--ner_lr", type=float, default=5e-4,
                        help="at 1e-4 the English NER head reached 50 F1 in 3 epochs, at 5e-4 71")
    parser.add_argument("--ner_epochs", type=float, default=3)
    parser.add_argument("--ner_train_examples", type=int, default=None, help="first N CoNLL-2003 sentences")
    parser.add_argument("--qa_lr", type=float, default=5e-4)
    parser.add_argument("--qa_epochs", type=float, default=3)
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    tasks = {t.strip() for t in args.tasks.split(",") if t.strip()}
    if tasks - set(TASKS):
        parser.error(f"--tasks: unknown {sorted(tasks - set(TASKS))}; choose from {list(TASKS)}")
    for field in ("seeds", "ner_seeds", "qa_seeds", "xsr_layers"):
        setattr(args, field, _ints(parser, field, getattr(args, field)))
    if not args.xsr_layers:
        parser.error("--xsr_layers: give at least one layer")
    args.align_languages, args.control_languages = _languages(args.align_languages), _languages(args.control_languages)
    overlap = sorted(set(args.align_languages) & set(args.control_languages))
    if overlap:
        parser.error(f"--control_languages: {overlap} are also aligned (--align_languages); a control is not")
    args.continual_methods = {m.strip() for m in args.continual_methods.split(",")}
    task_methods = {m.strip() for m in args.task_methods.split(",")}
    check_inputs(args, tasks, methods, parser)
    check_settings(args, parser)
    from amber_align.errors import AmberAlignError

    try:
        run(args, tasks, methods, task_methods)
    except AmberAlignError as err:  # bad data or a bad environment: one line, exit 2 (finished units are kept)
        parser.exit(2, f"error: {err}\n")


def run(args: argparse.Namespace, tasks: set[str], methods: list[str], task_methods: set[str]) -> None:
    """Every unit of ``methods`` × ``tasks`` not yet in ``--out``, then the tables and plots of the folder."""
    args.model = resolve_model(args.model)
    started = time.time()
    for name in methods:
        model_dir = align_method(name, args)
        if "xsr" in tasks:
            xsr_unit(name, model_dir, args)
        if name == "procrustes":  # a map on frozen features: nothing to fine-tune or extract with
            continue
        if "aer" in tasks:
            aer_unit(name, model_dir, args)
        for task, seeds in (("nli", args.seeds), ("nli_continual", args.seeds), ("ner", args.ner_seeds),
                            ("qa", args.qa_seeds)):
            if task not in tasks or (task == "nli_continual" and name not in args.continual_methods) or \
                    (task in ("ner", "qa") and name not in task_methods):
                continue
            for seed in seeds:
                task_unit(name, model_dir, task, seed, args)
        if "ner_features" in tasks and name in task_methods:
            ner_features_unit(name, model_dir, args)
    # The tables cover every method with results under --out, not only this invocation's --methods: a staged run
    # (--methods none, then --methods cao_mean, ...) must not leave a comparison.md that lists the last stage only.
    result = aggregate(args.out, [m for m in METHODS if (args.out / "results" / m).is_dir()], Path(args.model))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"CPU ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)"
    print(result["markdown"])
    print(f"device: {device}; this invocation: {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
