"""Readers of the file formats published model weights come in: ONNX models (with the ``onnx`` package) and
TensorFlow GraphDefs (with ``protobuf``), and a PyTorch module that runs a GraphDef's operations."""
