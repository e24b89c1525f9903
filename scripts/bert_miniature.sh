#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the BERT miniature of the LAMB paper's claim on the
# Python documentation (about 2.5 hours on 2 CPU cores): WordPiece + TFRecords at seq 128,
# then BERT-tiny for 4,000 steps at batch 64 with AdamW (the baseline) and with LAMB (its peak
# as tuned at that batch), and for 500 steps (1/8) at batch 1,024 (16x) with LAMB three times:
# the paper's untuned rule in full (peak x sqrt(16), warmup epochs x 16: LEGW), the sqrt peak
# with the base's 10% warmup, and the batch-64 peak unscaled; then the comparison table and
# plot. Results go to runs/bert_miniature/. Extra arguments go to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=runs/bert_miniature
BIN=.venv/bin
# The vocabulary is pinned: one trained here would differ from build to build
# (huggingface/tokenizers#1794), and so would every record.
"$BIN/tf-lamb-bert-data" --output_dir="$OUT/data" --vocab_file=docs/bert_miniature/vocab.txt \
    --max_seq_lengths=128 --max_predictions_per_seq=20
DATA=(--train_files="$OUT/data/seq128/train-*" --eval_files="$OUT/data/seq128/heldout-*")
SMALL=(--eval_every=250 --checkpoint_every=1000)
LARGE=(--eval_every=25 --checkpoint_every=100 --max_per_replica_batch_size=256)
"$BIN/tf-lamb-bert-pretrain" --config=tiny_adamw_64 "${DATA[@]}" "${SMALL[@]}" \
    --output_dir="$OUT/adamw_64" "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_64 "${DATA[@]}" "${SMALL[@]}" \
    --output_dir="$OUT/lamb_64" "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_1k_legw "${DATA[@]}" "${LARGE[@]}" \
    --output_dir="$OUT/lamb_1k_sqrt_legw" "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_1k "${DATA[@]}" "${LARGE[@]}" \
    --output_dir="$OUT/lamb_1k_sqrt" "$@"
"$BIN/tf-lamb-bert-pretrain" --config=tiny_lamb_1k --learning_rate=1e-2 "${DATA[@]}" \
    "${LARGE[@]}" --output_dir="$OUT/lamb_1k_base_lr" "$@"
exec "$BIN/tf-lamb-compare" --metric=eval_mlm_accuracy --step_share=0.125 \
    --runs="adamw_64=$OUT/adamw_64,lamb_64=$OUT/lamb_64,lamb_1k_sqrt_legw=$OUT/lamb_1k_sqrt_legw,lamb_1k_sqrt=$OUT/lamb_1k_sqrt,lamb_1k_base_lr=$OUT/lamb_1k_base_lr" \
    --output_dir="$OUT"
