"""Sinks in other libraries' training loops (transformers' ``Trainer``: :mod:`.transformers`)."""
