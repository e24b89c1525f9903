"""Pieces the recipes share: a seeded setup and a small custom training loop."""

from .loop import make_evaluate, make_train_step, train
from .runtime import check_writers, seed_everything

__all__ = ["check_writers", "make_evaluate", "make_train_step", "seed_everything", "train"]
