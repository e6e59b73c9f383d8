"""Config classes, one module per method family (bottleneck, LoRA, prefix, prompt, ReFT, unions)."""
