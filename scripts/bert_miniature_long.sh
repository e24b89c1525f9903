#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the BERT miniature over 4x the steps of
# scripts/bert_miniature.sh (about 6 hours on 2 CPU cores): the same pinned records, BERT-tiny
# for 16,000 steps at batch 64 with AdamW (`tiny_adamw_64_long`) and for 2,000 steps (1/8) at
# batch 1,024 (16x) with LAMB under the paper's untuned rule (`tiny_lamb_1k_legw_long`), then
# the comparison table and plot. Run it again after a stop: each run resumes from its last
# checkpoint, and a finished run is left as it is. Results go to runs/bert_miniature_long/.
# Extra arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_DIR=runs/bert_miniature/data
OUT=runs/bert_miniature_long
BIN=.venv/bin
"$BIN/tf-lamb-bert-data" --output_dir="$DATA_DIR" --vocab_file=docs/bert_miniature/vocab.txt \
    --max_seq_lengths=128 --max_predictions_per_seq=20
DATA=(--train_files="$DATA_DIR/seq128/train-*" --eval_files="$DATA_DIR/seq128/heldout-*")
"$BIN/tf-lamb-bert-pretrain" --config=tiny_adamw_64_long "${DATA[@]}" --eval_every=500 \
    --checkpoint_every=500 --output_dir="$OUT/adamw_64" "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_1k_legw_long "${DATA[@]}" --eval_every=50 \
    --checkpoint_every=50 --max_per_replica_batch_size=256 --output_dir="$OUT/lamb_1k_legw" "$@"
exec "$BIN/tf-lamb-compare" --metric=eval_mlm_accuracy --step_share=0.125 \
    --runs="adamw_64=$OUT/adamw_64,lamb_1k_legw=$OUT/lamb_1k_legw" --output_dir="$OUT"
