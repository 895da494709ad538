"""Fine-tuning a model on a subset and evaluating it on held-out sets (bench quality)."""
