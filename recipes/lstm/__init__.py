"""LSTMs under growing batches: the LEGW rule against linear scaling and no warmup."""
