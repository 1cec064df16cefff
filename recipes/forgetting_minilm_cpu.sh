#!/usr/bin/env bash
# Efimov et al.'s forgetting analysis as one recipe, CPU-sized, on MiniLM (the offline encoder):
#   align (the demo: Cao on es/de/fr) -> fine-tune NLI on XNLI-en dev with and without continual learning ->
#   zero-shot XNLI (es/de/fr) of both, and diagnostics of every stage (before, aligned, fine-tuned x2):
#   related vs unrelated word distances (histograms) and contextual word retrieval on held-out es-en pairs
#   (Tatoeba XSR es, eflomal links), then `compare` tables and plots.
# Needs ../shared/data beside the checkout (or DATA=...). About 30 min on 2 CPU cores.
#   bash recipes/forgetting_minilm_cpu.sh [OUT_DIR] [ALIGNED_MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/forgetting}
ALIGNED=${2:-$OUT/aligned}
DATA=${DATA:-../shared/data}
AA=${AA:-.venv/bin/amber-align}
MINILM=$(.venv/bin/python -c "from amber_align.demo import minilm_path; print(minilm_path())")
[ -f "$ALIGNED/model.safetensors" ] || $AA demo --output_dir "$ALIGNED"
# CPU-sized: 1,000 XNLI-en dev pairs x 2 epochs (Efimov: MultiNLI), 1,000 test pairs per language.
NLI=(--report_to none --save_strategy no --seed 42 --max_train_examples 1000 --max_eval_examples 1000
     --languages en,es,de,fr)
$AA finetune --task nli --config recipes/tasks/nli_xnli.yaml --model "$ALIGNED" --output_dir "$OUT/plain" \
  --run_name_in_results plain "${NLI[@]}"
$AA finetune --task nli --config recipes/tasks/nli_xnli_continual.yaml --model "$ALIGNED" --output_dir "$OUT/continual" \
  --run_name_in_results continual --continual_anchor_model "$MINILM" "${NLI[@]}"
HELDOUT=(--src_file "$DATA/xsr/tatoeba/tatoeba.spa-eng.spa" --tgt_file "$DATA/xsr/tatoeba/tatoeba.spa-eng.eng"
         --src_lang es --tgt_lang en --max_pairs 500)
STAGES=(--model "before=$MINILM" --model "aligned=$ALIGNED" --model "plain=$OUT/plain" --model "continual=$OUT/continual")
$AA diagnose distances "${STAGES[@]}" "${HELDOUT[@]}" --output_dir "$OUT/distances"
$AA diagnose word-retrieval "${STAGES[@]}" "${HELDOUT[@]}" --output_dir "$OUT/word_retrieval"
$AA compare "$OUT/plain" "$OUT/continual" --names plain,continual --output_dir "$OUT/comparison_nli"
$AA compare "$OUT/word_retrieval/before" "$OUT/word_retrieval/aligned" "$OUT/word_retrieval/plain" \
  "$OUT/word_retrieval/continual" --output_dir "$OUT/comparison_word_retrieval"
