"""mBERT-vs-XLM-R parity: the same comparison, run from two mini models, side by side.

``compare.py`` run twice (``--model models/mini-mbert-cpu`` and ``--model models/mini-xlmr-cpu``, the same corpus,
sizes and budgets; only the vocabulary and its segmentation differ) leaves a ``comparison.json`` in each ``--out``.
This reads them and writes, for every method and task both runs have, the two scores and their difference
(``parity.md``, ``parity.json``, ``parity.png``), plus Tatoeba per language for the methods in ``--xsr_methods``:
whether "XLM-R-style transfers as well as mBERT-style" holds here is then a measured row, not an assumption.

    python recipes/comparison/parity.py \\
        --runs mBERT=runs/mini_comparison XLM-R=runs/mini_xlmr_comparison --out runs/mini_parity
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from amber_align.io_utils import atomic_write_text

__all__ = ["TASK_TITLES", "load_runs", "parity_tables", "main"]

TASK_TITLES = {"xsr": "Tatoeba P@1 (avg of the 14 aligned languages)", "nli": "XNLI accuracy (avg of 9)",
               "nli_continual": "XNLI accuracy, continual alignment (avg of 9)", "ner": "NER F1 (avg es, nl)",
               "qa": "XQuAD F1 (avg of 11)"}


def load_runs(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``LABEL=DIR`` pairs -> {label: comparison.json content}; exactly two, each file present and readable."""
    if len(specs) != 2:
        raise SystemExit(f"error: --runs takes exactly two LABEL=DIR pairs, got {len(specs)}: {specs}")
    runs: dict[str, dict[str, Any]] = {}
    for spec in specs:
        label, sep, directory = spec.partition("=")
        if not sep or not label or not directory:
            raise SystemExit(f"error: --runs: expected LABEL=DIR (e.g. mBERT=runs/mini_comparison), got {spec!r}")
        path = Path(directory) / "comparison.json"
        if not path.is_file():
            raise SystemExit(f"error: {path}: not found; run compare.py --out {directory} first")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SystemExit(f"error: {path}: not a compare.py comparison.json (expected 'summary' and 'raw'): "
                             f"{err}") from err
        if not isinstance(data, dict) or not {"summary", "raw"} <= data.keys():
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise SystemExit(f"error: {path}: not a compare.py comparison.json (expected 'summary' and 'raw'), "
                             f"found {found}")
        runs[label] = data
    return runs


def _cell(summary: dict[str, Any], task: str) -> str:
    seeds = summary.get(f"{task}_seeds", 1)
    value = summary[task]
    return f"{value:.1f} ± {summary[f'{task}_std']:.1f} ({seeds})" if seeds > 1 else f"{value:.1f}"


def parity_tables(runs: dict[str, dict[str, Any]], xsr_methods: list[str]) -> tuple[str, dict[str, Any]]:
    """Markdown (one table per task, then Tatoeba per language) and the rows behind it."""
    (a, run_a), (b, run_b) = runs.items()
    lines: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    for task, title in TASK_TITLES.items():
        methods = [m for m, s in run_a["summary"].items() if task in s and task in run_b["summary"].get(m, {})]
        if not methods:
            continue
        lines += [f"#### {title}", "", f"| method | {a} | {b} | {b} − {a} |", "|---|---:|---:|---:|"]
        for method in methods:
            sa, sb = run_a["summary"][method], run_b["summary"][method]
            diff = sb[task] - sa[task]
            rows.setdefault(task, []).append({"method": method, a: sa[task], b: sb[task], "diff": diff})
            lines.append(f"| {method} | {_cell(sa, task)} | {_cell(sb, task)} | {diff:+.1f} |")
        lines.append("")
    for method in xsr_methods:
        per = [run["raw"].get("xsr", {}).get(method) for run in (run_a, run_b)]
        if not all(per):
            continue
        scores_a, scores_b = per[0][0], per[1][0]
        langs = [k[: -len("_xx2en")] for k in scores_a if k.endswith("_xx2en") and k in scores_b]
        lines += [f"#### Tatoeba P@1 xx→en per language, {method}", "",
                  "| model | " + " | ".join(langs) + " |", "|---|" + "---:|" * len(langs)]
        for label, scores in ((a, scores_a), (b, scores_b)):
            lines.append(f"| {label} | " + " | ".join(f"{scores[f'{lang}_xx2en']:.1f}" for lang in langs) + " |")
        wins = sum(scores_b[f"{lang}_xx2en"] > scores_a[f"{lang}_xx2en"] for lang in langs)
        lines += ["", f"{b} above {a} in {wins} of {len(langs)} languages.", ""]
        rows.setdefault("xsr_per_language", []).append(
            {"method": method, a: {lang: scores_a[f"{lang}_xx2en"] for lang in langs},
             b: {lang: scores_b[f"{lang}_xx2en"] for lang in langs}, "b_above_a": wins})
    if not rows:
        raise SystemExit(f"error: the two runs ({a}, {b}) share no method and task; nothing to compare")
    diffs = [r["diff"] for task in TASK_TITLES for r in rows.get(task, [])]
    lines.append(f"Over the {len(diffs)} method × task cells both runs have: {b} − {a} mean "
                 f"{statistics.fmean(diffs):+.2f}, {sum(d > 0 for d in diffs)} above, {sum(d < 0 for d in diffs)} "
                 "below.")
    return "\n".join(lines), rows


def _plot(path: Path, labels: tuple[str, str], rows: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASK_TITLES if t in rows]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        names = [r["method"] for r in rows[task]]
        for offset, label, colour in ((-0.2, labels[0], "tab:blue"), (0.2, labels[1], "tab:orange")):
            ax.bar([i + offset for i in range(len(names))], [r[label] for r in rows[task]], width=0.4,
                   label=label, color=colour)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(TASK_TITLES[task], fontsize=8)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=["mBERT=runs/mini_comparison", "XLM-R=runs/mini_xlmr_comparison"],
                        help="two LABEL=DIR pairs, each DIR a compare.py --out")
    parser.add_argument("--xsr_methods", default="none,amber_sa", help="methods whose Tatoeba is shown per language")
    parser.add_argument("--out", type=Path, default=Path("runs/mini_parity"))
    args = parser.parse_args(argv)
    runs = load_runs(args.runs)
    markdown, rows = parity_tables(runs, [m.strip() for m in args.xsr_methods.split(",") if m.strip()])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "parity.md", markdown + "\n")
    atomic_write_text(args.out / "parity.json", json.dumps(rows, indent=1) + "\n")
    if any(task in rows for task in TASK_TITLES):
        _plot(args.out / "parity.png", tuple(runs), rows)
    print(markdown)
    return markdown


if __name__ == "__main__":
    main()
