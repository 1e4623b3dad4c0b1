"""infercc: compile a PyTorch model into verified, benchmarked inference artifacts."""

__version__ = "0.1.0"
