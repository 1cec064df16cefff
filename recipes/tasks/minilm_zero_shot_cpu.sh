#!/usr/bin/env bash
# One recipe for the README's zero-shot table: MiniLM (the offline encoder) before and after the demo's alignment,
# on XSR (Tatoeba es/de/fr/ru), NER (CoNLL-2003 en -> CoNLL-2002 es/nl), NLI (XNLI-en dev -> XNLI test es/de/fr)
# and QA (TyDiQA-GoldP en -> XQuAD es/de), with CPU-sized subsets (below), then `amber-align compare`.
# Needs ../shared/data beside the checkout (or DATA=...). About an hour on 2 CPU cores.
#   bash recipes/tasks/minilm_zero_shot_cpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/minilm_zero_shot}
DATA=${DATA:-../shared/data}
AA=${AA:-.venv/bin/amber-align}
MINILM=$(.venv/bin/python -c "from amber_align.demo import minilm_path; print(minilm_path())")
COMMON=(--report_to none --save_strategy no --seed 42)
# CPU-sized subsets: train on the first N English examples, evaluate the first M of each language.
NER=(--max_train_examples 3000 --max_eval_examples 2000 --languages en,es,nl)
NLI=(--max_eval_examples 2000 --languages en,es,de,fr)            # trains on all 2,490 XNLI-en dev pairs
QA=(--max_train_examples 800 --languages en,es,de)                 # XQuAD: all 1,190 questions per language

[ -f "$OUT/aligned/model.safetensors" ] || $AA demo --output_dir "$OUT/aligned"
for name in base aligned; do
  model=$MINILM; [ "$name" = aligned ] && model=$OUT/aligned
  run=$OUT/$name
  $AA evaluate --task xsr --model "$model" --languages es,de,fr,ru --data_dir "$DATA/xsr/tatoeba" --output_dir "$run" \
    --run_name_in_results "$name"
  $AA finetune --task nli --config recipes/tasks/nli_xnli.yaml --model "$model" --output_dir "$run/nli" \
    --results_dir "$run" --run_name_in_results "$name" "${COMMON[@]}" "${NLI[@]}"
  $AA finetune --task ner --config recipes/tasks/ner_conll.yaml --model "$model" --output_dir "$run/ner" \
    --results_dir "$run" --run_name_in_results "$name" "${COMMON[@]}" "${NER[@]}"
  $AA finetune --task qa --config recipes/tasks/qa_tydiqa_xquad.yaml --model "$model" --output_dir "$run/qa" \
    --results_dir "$run" --run_name_in_results "$name" "${COMMON[@]}" "${QA[@]}"
done
$AA compare "$OUT/base" "$OUT/aligned" --names base,aligned --output_dir "$OUT/comparison"
