"""TensorRT support shared by the build stage, the runtime adapter and `infercc inspect`.

flavours.py    which TensorRT is installed (10.x, 11.x, RTX 1.x) and the one capability table
profiles.py    optimization profiles from shape ranges; picking a profile for a feed (no TensorRT import)
errors.py      parser and builder errors made readable, with hints
builder.py     ONNX -> serialized engine (the only place that drives the builder)
sidecar.py     the JSON written next to every engine; plan-header decoding; load-time checks
calibrator.py  TensorRT 10 implicit INT8 calibration: batching, cache file, the calibrator class

Nothing here imports TensorRT, torch or onnx at module import time.
"""
