"""The config's named choices (precisions, targets, exporters, ...): plain Enums that import nothing heavy, so
the command line takes its option choices from them without loading the pydantic models (--help stays fast).
`infercc.config` uses them in its models and re-exports them."""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    bf16 = "bf16"  # OpenVINO CPU inference precision (AMX / AVX512-BF16; the file stays an FP32 graph) and
    # AOTInductor packages (the module cast to bfloat16)


class Target(StrEnum):
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    inductor = "inductor"  # AOTInductor .pt2 packages (torch.export + aoti_compile_and_package)


class Exporter(StrEnum):
    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


class Simplifier(StrEnum):
    onnxslim = "onnxslim"
    onnxsim = "onnxsim"
    none = "none"


class DType(StrEnum):
    float32 = "float32"
    float16 = "float16"
    int64 = "int64"
    int32 = "int32"
    bool = "bool"


class CalibrationMethod(StrEnum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class OutputKind(StrEnum):
    """What an output holds, which decides its metrics: top-k agreement for classification scores only."""

    classification = "classification"
    embedding = "embedding"  # embeddings, hidden states, features: cosine and error statistics, no top-k


class Statistic(StrEnum):
    """How elementwise errors are judged against a tolerance (Polygraphy's check_error_stat)."""

    elemwise = "elemwise"
    max = "max"
    mean = "mean"
    median = "median"
    quantile = "quantile"


class Reference(StrEnum):
    pytorch = "pytorch"
    onnx = "onnx"


class LockMode(StrEnum):
    wait = "wait"
    fail = "fail"


class Fuser(StrEnum):
    packed_attention = "packed_attention"
    onnxscript = "onnxscript"
    ort_transformers = "ort_transformers"


class Flavour(StrEnum):
    auto = "auto"
    tensorrt = "tensorrt"
    tensorrt_rtx = "tensorrt_rtx"


class Int8Route(StrEnum):
    qdq = "qdq"
    calibrator = "calibrator"
