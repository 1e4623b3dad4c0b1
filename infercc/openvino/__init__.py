"""OpenVINO backend: the `openvino-cpu` runtime (runtime.py), its error messages (errors.py) and what the CPU
can do in BF16 (capability.py). It reads the same ONNX artifacts as ONNX Runtime; nothing here imports
openvino at module import time."""
