"""Measuring trained models: per-document losses, memorization beyond loss, forgetting, a
study's assessment, and the statistics they share (mean ± standard error, over seeds)."""
