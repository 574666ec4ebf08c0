"""Everything before the training loop, in the order data flows: corpora and text sources,
token stores, the training stream and its sink keys, corpus annotation, and rows of a batch;
with the data section of a study config (config.py)."""
