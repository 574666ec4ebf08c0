"""Studies: every method on one stream (run), sweeps over settings and seeds, the pretrained
start, reports, and what is read from finished studies (deletion, export, frontier, ladder)."""
