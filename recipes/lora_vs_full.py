"""LoRA against full fine-tuning on the e5 demo: the alignment effect of each on multilingual-e5-small.

    python recipes/lora_vs_full.py --seeds 42 --out runs/lora_vs_full        # docs/peft.md

Both rows run ``amber-align demo``'s e5 recipe (AMBER sentence alignment on 4,000 Tatoeba-Challenge ar-en pairs,
40 steps × 32 pairs, word embeddings frozen; amber_align/demo/recipe_e5.yaml) and its Tatoeba table (ar trained,
sw untrained, es/ru controls, both directions). Full: the recipe as it is (learning rate 3e-5). LoRA: the same
with ``peft: {method: lora, r: 8, alpha: 16, target_modules: all-linear}`` and learning rate ``--lora_lr`` (adapters
start at zero and need a larger step). Each (mode, seed) writes ``OUT/<mode>-seed<S>/results.json`` and is
skipped when present; the summary is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from amber_align.demo import run_demo

LANGUAGES = ("ar", "sw", "es", "ru")


def run(mode: str, seed: int, args: argparse.Namespace) -> dict:
    out = args.out / f"{mode}-seed{seed}"
    done = out / "lora_vs_full.json"
    if done.exists():
        return json.loads(done.read_text())
    overrides: dict = {"seed": seed}
    if mode == "lora":
        overrides.update(learning_rate=args.lora_lr, peft={"method": "lora", "r": args.r, "alpha": 2 * args.r,
                                                            "target_modules": "all-linear"})
    result = run_demo(output_dir=out / "model", overrides=overrides, demo_model="e5-small")
    row = {"mode": mode, "seed": seed, "train_seconds": result["train_seconds"],
           **{f"{lang}_{d}": round(result["after"][f"{lang}_{d}_p@1"] - result["before"][f"{lang}_{d}_p@1"], 2)
              for lang in LANGUAGES for d in ("xx2en", "en2xx")},
           "before": {k: v for k, v in result["before"].items() if k.endswith("p@1")}}
    out.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row, indent=1) + "\n")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--out", type=Path, default=Path("runs/lora_vs_full"))
    parser.add_argument("--lora_lr", type=float, default=3e-4)
    parser.add_argument("--r", type=int, default=8)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {mode: [run(mode, seed, args) for seed in seeds] for mode in ("full", "lora")}
    header = "| mode | " + " | ".join(f"{lang} xx→en Δ | {lang} en→xx Δ" for lang in LANGUAGES) + " | train s |"
    lines = [f"Seeds {seeds}; Δ = P@1 after − before, points (mean ± std over seeds where there are several).", "",
             header, "|---|" + "---:|" * (2 * len(LANGUAGES) + 1)]
    for mode, runs in rows.items():
        cells = []
        for lang in LANGUAGES:
            for d in ("xx2en", "en2xx"):
                values = [r[f"{lang}_{d}"] for r in runs]
                cells.append(f"{statistics.fmean(values):+.1f}" + (f" ± {statistics.stdev(values):.1f}"
                                                                    if len(values) > 1 else ""))
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
