"""Tables, sanity gate and plot of a ``compare.py`` run folder: everything under ``OUT/results/<method>/*.json``.

Kept apart from ``compare.py`` (which trains and evaluates) so that the report can be rebuilt from the result files
alone: ``python recipes/comparison/compare.py --out OUT --methods none --tasks xsr`` with every unit done only
re-reads them. One file per unit: ``xsr.json`` (Tatoeba P@1 per language and layer), ``aer.json`` (AER per gold
set), ``{task}_seed{N}.json`` (NLI, NLI with continual alignment, NER, QA) and ``forgetting_{task}_seed{N}.json``
(the fine-tuned encoder's alignment: Tatoeba and word distances after fine-tuning).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from amber_align.io_utils import atomic_write_text

__all__ = ["ALIGN_LANGUAGES", "XSR_LANGUAGES", "NLI_LANGUAGES", "NER_LANGUAGES", "QA_LANGUAGES", "TASK_LANGUAGES",
           "TITLES", "TASKS", "PRIMARY", "aggregate", "sanity_gate"]

# The 14 non-English XNLI languages (AMBER's alignment languages); ja, ko and ro have parallel data but are not
# aligned (controls).
ALIGN_LANGUAGES = ("ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
XSR_LANGUAGES = ALIGN_LANGUAGES + ("ja", "ko", "ro")
NLI_LANGUAGES = ("en", "ar", "de", "es", "fr", "hi", "ru", "th", "vi", "zh")
NER_LANGUAGES = ("en", "es", "nl")
QA_LANGUAGES = ("en", "ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
TITLES = {"nli": "XNLI accuracy (XNLI-en dev → XNLI test)",
          "nli_continual": "XNLI accuracy with continual alignment during fine-tuning (XNLI-en dev → XNLI test)",
          "ner": "NER entity F1 (CoNLL-2003 en → CoNLL-2002 es/nl)", "qa": "QA F1 (TyDiQA-GoldP en → XQuAD)",
          "ner_features": "Wang et al.'s feature-based NER: entity F1 of a BiLSTM-CRF on the frozen encoder's last "
                          "four layers (CoNLL-2003 en → CoNLL-2002 es/nl), without and with refinement maps"}
TASK_LANGUAGES = {"nli": NLI_LANGUAGES, "nli_continual": NLI_LANGUAGES, "ner": NER_LANGUAGES, "qa": QA_LANGUAGES}
TASKS = ("xsr", "aer", "nli", "nli_continual", "ner", "ner_features", "qa")
PRIMARY = {"nli": "accuracy", "nli_continual": "accuracy", "ner": "f1", "qa": "f1"}


def _cell(mean: float, std: float, n: int) -> str:
    """``mean ± std``, or the mean alone for one seed (no spread to show)."""
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _layer_name(layer: str) -> str:
    return "last layer" if layer == "-1" else f"layer {layer}"


def _xsr_lines(per_method: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """One table per layer: every language xx→en, the average of the aligned ones in both directions and of the
    controls (languages not aligned)."""
    first = per_method[next(iter(per_method))][0]
    aligned = list(first.get("aligned", ALIGN_LANGUAGES))
    controls = [lang for lang in first.get("languages", XSR_LANGUAGES) if lang not in aligned]
    layers = list(first.get("by_layer", {"-1": None}))
    lines: list[str] = []
    for layer in layers:
        cols = aligned + controls
        lines += [f"### XSR: Tatoeba P@1 xx→en ({_layer_name(layer)}, mean pooling); avg = the {len(aligned)} "
                  f"aligned languages, ctrl = the controls ({', '.join(controls) or 'none'})", "",
                  "| method | " + " | ".join(cols) + " | avg | avg en→xx | ctrl | ctrl en→xx |",
                  "|---|" + "---:|" * (len(cols) + 4)]
        for name, runs in per_method.items():
            result = runs[0]
            scores = result.get("by_layer", {}).get(layer) or result["scores"]
            avg = statistics.fmean(scores[f"{lang}_xx2en"] for lang in aligned)
            avg_rev = statistics.fmean(scores[f"{lang}_en2xx"] for lang in aligned)
            ctrl = statistics.fmean(scores[f"{lang}_xx2en"] for lang in controls) if controls else None
            ctrl_rev = statistics.fmean(scores[f"{lang}_en2xx"] for lang in controls) if controls else None
            key = "xsr" if layer == layers[0] else f"xsr_layer{layer}"
            summary.setdefault(name, {})[key] = avg
            fmt = (lambda v: "" if v is None else f"{v:.1f}")
            lines.append(f"| {name} | " + " | ".join(f"{scores[f'{lang}_xx2en']:.1f}" for lang in cols)
                         + f" | **{avg:.1f}** | {avg_rev:.1f} | {fmt(ctrl)} | {fmt(ctrl_rev)} |")
        lines.append("")
    return lines


def _aer_lines(per_method: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    first = per_method[next(iter(per_method))][0]
    sets = list(first["scores"])
    lines = [f"### Word alignment: AER (lower is better), softmax extraction at layer {first.get('layer')}, "
             "threshold 1e-3", "", "| method | " + " | ".join(f"{s} AER | {s} P / R" for s in sets) + " |",
             "|---|" + "---:|---:|" * len(sets)]
    for name, runs in per_method.items():
        scores = runs[0]["scores"]
        summary.setdefault(name, {})["aer"] = statistics.fmean(scores[s]["aer"] for s in sets)
        lines.append(f"| {name} | " + " | ".join(
            f"{scores[s]['aer']:.1f} | {scores[s]['precision']:.1f} / {scores[s]['recall']:.1f}" for s in sets) + " |")
    return lines + [""]


def _task_lines(task: str, per_method: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """Per-language scores, the zero-shot average and XTREME's cross-lingual transfer gap (Hu et al. 2020: English
    minus the zero-shot average, computed per seed): the gap is what alignment should shrink, and it sets apart how
    well a seed learnt the task in English (English and the other languages rise and fall together) from how well
    that learning transferred."""
    cols = list(TASK_LANGUAGES[task])
    lines = [f"### {TITLES[task]} (mean ± std over the seeds run); avg = the {len(cols) - 1} non-English languages; "
             "gap = en − avg, per seed (XTREME's transfer gap, lower is better)",
             "", "| method | seeds | " + " | ".join(cols) + " | avg | gap |", "|---|---:|" + "---:|" * (len(cols) + 2)]
    for name, runs in per_method.items():
        cells = [str(len(runs))]
        for lang in cols:
            values = [r[lang] for r in runs if lang in r]
            cells.append(_cell(*_mean_std(values), len(values)) if values else "")
        averages = [statistics.fmean(r[lang] for lang in cols if lang != "en" and lang in r) for r in runs]
        mean, std = _mean_std(averages)
        summary.setdefault(name, {})[task] = mean
        summary[name][f"{task}_std"] = std
        summary[name][f"{task}_seeds"] = len(runs)
        gaps = [r["en"] - avg for r, avg in zip(runs, averages) if "en" in r]
        gap = ""
        if gaps:
            gap_mean, gap_std = _mean_std(gaps)
            summary[name][f"{task}_gap"], summary[name][f"{task}_gap_std"] = gap_mean, gap_std
            gap = _cell(gap_mean, gap_std, len(gaps))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | **{_cell(mean, std, len(runs))}** | {gap} |")
    return lines + [""]


def _feature_ner_lines(per_method: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """Feature-based NER (``wang_ner.py``): F1 mean ± std over the seeds per language without maps ("joint"), with
    the refinement maps, and the paired per-seed difference (the same seed trains the same English tagger)."""
    from wang_ner import paired_delta

    first = next(iter(per_method.values()))[0]
    langs, mapped = list(first["joint"]), list(first["refined"])
    lines = [f"### {TITLES['ner_features']}", "",
             "| method | seeds | " + " | ".join(langs) + "".join(f" | {m} + maps | Δ {m} (paired)" for m in mapped)
             + " |", "|---|---:|" + "---:|" * (len(langs) + 2 * len(mapped))]
    for name, (result, *_) in per_method.items():
        n = len(result["seeds"])
        cells = [str(n)] + [_cell(*_mean_std(result["joint"][lang]), n) for lang in langs]
        for lang in mapped:
            delta, spread = paired_delta(result["refined"][lang], result["joint"][lang])
            paired = f"{delta:+.1f} ± {spread:.1f}" if n > 1 else f"{delta:+.1f}"
            cells += [_cell(*_mean_std(result["refined"][lang]), n), paired]
            summary.setdefault(name, {})[f"ner_features_delta_{lang}"] = delta
        summary.setdefault(name, {})["ner_features"] = statistics.fmean(
            statistics.fmean(v) for lang, v in result["joint"].items() if lang != "en")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    layers = ", ".join(str(layer) for layer in first["layers"])
    return lines + [f"Layers {layers} (hidden-state indices), {first['train_sentences']:,} English training sentences; "
                    "orthogonal maps (τ = 0.9) fit per language on the corpus's pairs with eflomal links; a "
                    "language without parallel data is measured without maps only.", ""]


def _forgetting_lines(results: list[tuple[str, dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """Alignment of the encoder before and after English fine-tuning (plain and continual): what "forgetting"
    means (Efimov et al. 2022). Tatoeba avg of the aligned languages per layer, and the mean related / unrelated
    word distance with their paired difference (larger = better separated)."""
    if not results:
        return []
    layers = list(results[0][1]["xsr_after"])
    lines = ["### Forgetting: the encoder's alignment before → after fine-tuning on English NLI", "",
             "| method | fine-tuning | seed | " + " | ".join(f"XSR avg {_layer_name(l)}" for l in layers)
             + " | related dist. | unrelated dist. | difference |", "|---|---|---:|" + "---:|" * (len(layers) + 3)]
    for name, result in results:
        cells = [f"{result['xsr_before'][l]:.1f} → {result['xsr_after'][l]:.1f}" for l in layers]
        d_before, d_after = result["distances_before"], result["distances_after"]
        cells += [f"{d_before[k]:.3f} → {d_after[k]:.3f}" for k in ("related", "unrelated", "difference")]
        lines.append(f"| {name} | {result['task']} | {result['seed']} | " + " | ".join(cells) + " |")
        summary.setdefault(name, {})[f"forgetting_{result['task']}"] = (
            result["xsr_after"][layers[0]] - result["xsr_before"][layers[0]])
    return lines + [f"Distances: 1 − cosine of aligned word pairs (related) and of the same words with a random "
                    f"other link's English word (unrelated), layer {results[0][1].get('distance_layer')}, "
                    f"{results[0][1].get('distance_pairs')} {results[0][1].get('distance_language')}–en pairs.", ""]


def aggregate(out: Path, methods: list[str], model: Path | None = None) -> dict[str, Any]:
    """Tables (markdown) and plots from every result file under ``out/results``; ``model`` (a pretrained mini
    model folder) adds its held-out perplexities to the sanity gate."""
    table: dict[str, dict[str, Any]] = {}
    forgetting: list[tuple[str, dict[str, Any]]] = []
    for name in methods:
        for path in sorted((out / "results" / name).glob("*.json")):
            result = json.loads(path.read_text())
            if "task" not in result:  # not a unit's result (an alignment's align_summary.json copied beside them)
                continue
            if path.name.startswith("forgetting_"):
                forgetting.append((name, result))
                continue
            entry = result if result["task"] in ("xsr", "aer", "ner_features") else result["scores"]
            table.setdefault(result["task"], {}).setdefault(name, []).append(entry)
    lines: list[str] = []
    summary: dict[str, Any] = {}
    for task, per_method in sorted(table.items(), key=lambda item: TASKS.index(item[0])):
        if task == "xsr":
            lines += _xsr_lines(per_method, summary)
        elif task == "aer":
            lines += _aer_lines(per_method, summary)
        elif task == "ner_features":
            lines += _feature_ner_lines(per_method, summary)
        else:
            lines += _task_lines(task, per_method, summary)
    lines += _forgetting_lines(forgetting, summary)
    pretraining, vocab_size = None, None
    if model is not None and (Path(model) / "pretraining.json").exists():
        pretraining = json.loads((Path(model) / "pretraining.json").read_text())
        vocab_size = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
    lines += sanity_gate(summary, pretraining, vocab_size)
    markdown = "\n".join(lines)
    raw = {task: {name: [r.get("scores", r) for r in runs] for name, runs in per.items()}
           for task, per in table.items()}
    atomic_write_text(out / "comparison.md", markdown + "\n")
    atomic_write_text(out / "comparison.json", json.dumps({"summary": summary, "raw": raw}, indent=1) + "\n")
    _plot(out, summary)
    return {"markdown": markdown, "summary": summary}


# The gate before any comparison is read: the unaligned model must be clearly above chance on both tasks.
XSR_CHANCE, XSR_GATE = 0.1, 1.0          # 1 in 1,000 candidates; gate: 10x chance
NLI_CHANCE, NLI_GATE = 100.0 / 3, 36.0   # three balanced classes; gate: ~2.5 standard errors at 2,000 pairs
PPL_GATE_FRACTION = 0.01                 # perplexity at most 1 % of the vocabulary size (uniform = 100 %)


def sanity_gate(summary: dict[str, Any], pretraining: dict[str, Any] | None = None,
                vocab_size: int | None = None) -> list[str]:
    """Markdown lines saying whether the unaligned model (``none``) passes the gate: held-out MLM perplexity of
    every language at most 1 % of the vocabulary size (a uniform guess scores the vocabulary size), Tatoeba and
    XNLI clearly above chance. ``[]`` when there is nothing to judge."""
    base = summary.get("none", {})
    lines = []
    if pretraining and vocab_size:
        gate = vocab_size * PPL_GATE_FRACTION
        worst = max(pretraining["heldout"].items(), key=lambda kv: kv[1]["perplexity"])
        failing = sorted(lang for lang, v in pretraining["heldout"].items() if v["perplexity"] > gate)
        verdict = "pass" if not failing else f"FAIL ({', '.join(failing)})"
        lines.append(f"- held-out MLM perplexity, worst language {worst[0]} {worst[1]['perplexity']:.0f} (uniform "
                     f"guess {vocab_size:,}, gate ≤ {gate:.0f} in every language): **{verdict}**")
    if not base and not lines:
        return []
    lines = ["### Sanity gate (the unaligned model)", ""] + lines
    if "xsr" in base:
        verdict = "pass" if base["xsr"] >= XSR_GATE else "FAIL"
        lines.append(f"- Tatoeba P@1 avg {base['xsr']:.1f} (chance {XSR_CHANCE}, gate ≥ {XSR_GATE}): **{verdict}**")
    if "nli" in base:
        verdict = "pass" if base["nli"] >= NLI_GATE else "FAIL"
        lines.append(f"- XNLI accuracy avg {base['nli']:.1f} (chance {NLI_CHANCE:.1f}, gate ≥ {NLI_GATE}): "
                     f"**{verdict}**")
    return lines + [""]


_PLOT_TITLES = {"xsr": "Tatoeba P@1 (avg aligned)", "aer": "AER (avg of the gold sets; lower is better)",
                "nli": "XNLI acc (avg 9)", "nli_continual": "XNLI acc, continual (avg 9)",
                "ner": "NER F1 (avg es, nl)", "qa": "XQuAD F1 (avg 11)"}


def _plot(out: Path, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in _PLOT_TITLES if any(t in s for s in summary.values())]
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        names = [n for n, s in summary.items() if task in s]
        values = [summary[n][task] for n in names]
        errors = [summary[n].get(f"{task}_std", 0.0) for n in names]
        ax.bar(range(len(names)), values, yerr=errors, color="tab:blue", capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(_PLOT_TITLES[task], fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=120)
    plt.close(fig)
