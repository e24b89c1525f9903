"""ResNet-50 on ImageNet TFRecords with LARS, LAMB or momentum SGD (docs/recipes/resnet.md)."""
