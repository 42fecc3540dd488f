"""The face detectors: one module per detector, each registering itself in
:data:`fiqa_bench.faces.detector.DETECTORS` (read when the registry is first read)."""
