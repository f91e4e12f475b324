"""ONNX: export (``export``), safe loading and ONNX Runtime sessions (``runtime``), parity with
PyTorch on task data (``parity``), INT8 (``quantize``), latency benchmarks (``bench``, one
``worker`` process per runtime and round) and their typed report (``report``)."""
