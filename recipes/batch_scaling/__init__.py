"""Fashion-MNIST batch-scaling study: accuracy against global batch size per optimizer.

Run ``python -m recipes.batch_scaling --help`` (or ``tf-lamb-batch-scaling`` when installed).
"""
