"""Batch layouts for training and evaluation."""
