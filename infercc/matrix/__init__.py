"""`infercc matrix`: models x precisions x targets, run on a local process pool or a Ray cluster."""
