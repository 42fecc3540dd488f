"""Readers of the file formats published model weights come in: protobuf's wire format, ONNX models and
TensorFlow GraphDefs (with a PyTorch module that runs a GraphDef's operations)."""
