"""Runs stages, owns caching (stage keys) and the manifest."""
