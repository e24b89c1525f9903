#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the BERT miniature of the LAMB paper's claim on the
# Python documentation (about 50 minutes on 2 CPU cores): WordPiece + TFRecords at seq 128,
# BERT-tiny with AdamW at batch 64 for 4,000 steps, BERT-tiny with LAMB at batch 1,024 (16x,
# sqrt-scaled peak, untuned) for 500 steps (1/8), then the comparison table and plot.
# Results go to runs/bert_miniature/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=runs/bert_miniature
BIN=.venv/bin
"$BIN/tf-lamb-bert-data" --output_dir="$OUT/data" --max_seq_lengths=128 \
    --max_predictions_per_seq=20
DATA=(--train_files="$OUT/data/seq128/train-*" --eval_files="$OUT/data/seq128/heldout-*")
"$BIN/tf-lamb-bert-pretrain" --config=tiny_adamw_64 "${DATA[@]}" --output_dir="$OUT/adamw_64" \
    --eval_every=250 --checkpoint_every=1000 "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_1k "${DATA[@]}" --output_dir="$OUT/lamb_1k" \
    --eval_every=25 --checkpoint_every=100 --max_per_replica_batch_size=256 "$@"
exec "$BIN/tf-lamb-compare" --runs="adamw_64=$OUT/adamw_64,lamb_1k=$OUT/lamb_1k" \
    --metric=eval_mlm_accuracy --step_share=0.125 --output_dir="$OUT"
