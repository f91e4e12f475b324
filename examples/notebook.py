"""harness from Python, as in a notebook: pick a model for a task, look at it, ship it.

Runs offline in about a minute on 2 CPU cores (the built-in synthetic task; put
``task="fashion-mnist"`` for real data). CI runs it (tests/e2e/test_api.py).

    python examples/notebook.py
"""

import numpy as np

import harness

# 1. Which small model should I ship for this task?
result = harness.select(task="synthetic", candidates=["cifar_convnet_xs", "cifar_resnet8"], epochs=1)
for row in result.rows:
    print(row.candidate, row.metrics.get("accuracy"), row.ort_b1_ms, "ms")
print("chosen:", result.winner.model if result.winner else None)

# 2. Its scores, per class.
report = harness.evaluate(result.winner.model)
print({k: round(v, 3) for k, v in report.metrics.items()})
print(report.to_rows()[:3])

# 3. The model itself, with its preprocessing: predict on raw uint8 images.
model = harness.load_model(result.winner.model)
images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
print("probabilities:", model.predict(images).shape, "classes:", model.class_names[:3])

# 4. Ship it: ONNX, checked against PyTorch, loaded back with ONNX Runtime.
exported = harness.export(result.winner.model, "exports")
print("exported:", exported.info.path, "opset", exported.info.opset)
parity = harness.check_onnx(result.winner.model)
print("parity passed:", parity.passed)
onnx = harness.load_onnx(str(exported.info.path))
print("onnx logits:", onnx.predict(images).shape)

# 5. The leaderboard as records (what --format json prints).
print([r.to_dict()["candidate"] for r in harness.leaderboard("synthetic")])

# 6. A report to share: one HTML file that opens offline.
shared = harness.report("synthetic", "report.html")
print("report:", len(shared.to_rows()), "rows, chosen", shared.chosen)
