"""Precision work: calibration ranges (and their cache), Q/DQ INT8 for ONNX Runtime and TensorRT, FP16,
accuracy against FP32, NaN/Inf tracing and the accuracy-aware fallback. Heavy imports stay inside functions."""
