"""Per-image predictions kept with a model version, and what is derived from them alone.

``stored``: which images a score covers (:class:`~harness.predictions.stored.EvalSet`) and the
stored validation/test logits; ``calibration``: ECE and temperature scaling fitted on those logits.
Both need only numpy and the registry, so they sit below train, evaluate and onnx, which all use
them: finetune saves the logits, evaluate compares and calibrates, export writes the temperature.
"""
