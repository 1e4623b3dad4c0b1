"""Model sources (how a spec becomes an nn.Module or an ONNX file) and the built-in examples."""
