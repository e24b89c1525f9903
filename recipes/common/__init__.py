"""What the recipes share: the optimizer and schedule factory, the training step and its two
drivers, data, reports and the run's set-up. ``recipes/README.md`` maps it."""
