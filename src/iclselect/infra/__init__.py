"""Helpers every layer shares: Hugging Face loading, Ray actor pools, progress, stage timing,
how counts are written. They import nothing else of iclselect's."""
