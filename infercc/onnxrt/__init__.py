"""ONNX Runtime: the onnxruntime-cpu / onnxruntime-cuda runtimes (runtime.py).

Nothing here imports onnxruntime at module import time.
"""
