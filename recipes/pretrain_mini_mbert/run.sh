#!/usr/bin/env bash
# Regenerate the committed mini multilingual BERT (models/mini-mbert-cpu) from ../shared/data:
#   1. build_corpus.py  monolingual sides of the en-xx corpora (18 languages), de-duplicated, evaluation sets out
#   2. prune_vocab.py   the real mBERT WordPiece vocabulary pruned to the pieces the corpus uses (+ mbert_ids.txt)
#   3. pretrain.py      joint MLM from scratch (no parallel signal), checkpoints every --save_steps, resumes
# CPU-scale by default (what ran here: 6000 steps x 128 sentences on 2 cores, ~45 min; see
# models/mini-mbert-cpu/pretraining.json and its README.md card). On a GPU pass a
# larger budget, e.g. STEPS=20000 BATCH=256 EXTRA=--bf16; re-running the script resumes an interrupted run.
#   bash recipes/pretrain_mini_mbert/run.sh [OUT_MODEL_DIR]
# ARCH=xlmr makes the mini XLM-R instead: the same corpus, size and budget, the XLM-R Unigram table pruned to the
# pieces the corpus uses at least MIN_COUNT (8) times, so that its safetensors stay under 25 MB:
#   ARCH=xlmr bash recipes/pretrain_mini_mbert/run.sh models/mini-xlmr-cpu
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
ARCH=${ARCH:-mbert}
CORPUS=${CORPUS:-runs/mini_mbert/corpus}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-128}
case "$ARCH" in
  mbert) WORK=${WORK:-runs/mini_mbert}; OUT=${1:-models/mini-mbert-cpu}; MIN_COUNT=${MIN_COUNT:-1}
         VOCAB=$DATA/tokenizers/bert-base-multilingual-cased/vocab.txt; PRUNED=vocab.txt ;;
  xlmr)  WORK=${WORK:-runs/mini_xlmr}; OUT=${1:-models/mini-xlmr-cpu}; MIN_COUNT=${MIN_COUNT:-8}
         VOCAB=$DATA/tokenizers/xlm-roberta-base/xlmr_vocab_hf_ids_derived.tsv; PRUNED=vocab.tsv ;;
  *) echo "error: ARCH must be mbert or xlmr, got '$ARCH'" >&2; exit 2 ;;
esac
[ -f "$CORPUS/stats.json" ] || $PY recipes/pretrain_mini_mbert/build_corpus.py --data "$DATA" --out "$CORPUS"
[ -f "$WORK/tokenizer/$PRUNED" ] || $PY recipes/pretrain_mini_mbert/prune_vocab.py --corpus "$CORPUS" \
  --vocab "$VOCAB" --out "$WORK/tokenizer" --min_count "$MIN_COUNT"
$PY recipes/pretrain_mini_mbert/pretrain.py --corpus "$CORPUS" --tokenizer "$WORK/tokenizer" --out "$WORK/model" \
  --max_steps "$STEPS" --batch_size "$BATCH" ${EXTRA:-}
mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.partial" && cp -r "$WORK/model/final" "$OUT.partial"
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
echo "wrote $OUT"
