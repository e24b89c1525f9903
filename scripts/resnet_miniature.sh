#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the ResNet recipe's CPU miniature (about 45 minutes on
# 2 CPU cores): Fashion-MNIST written as ImageNet-format JPEG TFRecords, then a ResNet-8 at
# global batch 2,048 for 10 epochs with Goyal et al.'s momentum SGD, MLPerf's LARS and LAMB
# with its untuned sqrt rule (configs fashion_*_2k), then the comparison table and plot.
# Results go to runs/resnet_miniature/. Extra arguments go to every training run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=runs/resnet_miniature
BIN=.venv/bin
"$BIN/tf-lamb-resnet-convert" --source=fashion_mnist --output_dir="$OUT/data"
DATA=(--train_files="$OUT/data/train-*" --eval_files="$OUT/data/validation-*")
for optimizer in momentum lars lamb; do
    "$BIN/tf-lamb-resnet-train" --config="fashion_${optimizer}_2k" "${DATA[@]}" \
        --output_dir="$OUT/$optimizer" --eval_every=29 --checkpoint_every=58 \
        --shuffle_buffer=10000 "$@"  # the measured runs' buffer (the default is 1,024)
done
exec "$BIN/tf-lamb-compare" --runs="momentum=$OUT/momentum,lars=$OUT/lars,lamb=$OUT/lamb" \
    --metric=eval_accuracy --output_dir="$OUT"
