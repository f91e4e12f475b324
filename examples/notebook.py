"""harness from Python, as in a notebook: pick a model for a task, look at it, ship it.

Runs offline in about a minute on 2 CPU cores (the built-in synthetic task; put
``task="fashion-mnist"`` for real data). CI runs it (tests/e2e/test_api.py).

    python examples/notebook.py
"""

import numpy as np

import harness

# 1. Which small model should I ship for this task?
result = harness.select_models(task="synthetic", candidates=["cifar_convnet_xs", "cifar_resnet8"], epochs=1)
for row in result.rows:
    print(row.candidate, row.metrics.get("accuracy"), row.ort_b1_ms, "ms")
print("chosen:", result.winner.model if result.winner else None)

# 2. Its scores, per class.
report = harness.evaluate_model(result.winner.model)
print({k: round(v, 3) for k, v in report.metrics.items()})
print(report.to_rows()[:3])

# 3. The model itself, with its preprocessing: predict on the task's own uint8 images (N, C, H, W).
model = harness.load_model(result.winner.model)
test = harness.load_images("synthetic", split="test", limit=2)   # .images, .labels, .class_names
images = test.images.numpy()
probabilities = model.predict(images)                             # numpy, (N, classes), rows sum to 1
print("probabilities:", probabilities.shape, "predicted:", [model.class_names[i] for i in probabilities.argmax(1)])

# 4. Ship it: ONNX, checked against PyTorch, loaded back with ONNX Runtime.
exported = harness.export(result.winner.model, "exports")
print("exported:", exported.info.path, "opset", exported.info.opset)
parity = harness.check_onnx(result.winner.model)
print("parity passed:", parity.passed)
onnx = harness.load_onnx(str(exported.info.path))
print("onnx probabilities:", onnx.predict(images).shape, "same as torch:",
      bool(np.allclose(onnx.predict(images), probabilities, atol=1e-4)))

# 5. The leaderboard as records (the rows --format json prints).
print([r.to_dict()["candidate"] for r in harness.leaderboard("synthetic")])

# 6. A report to share: one HTML file that opens offline.
shared = harness.write_report("synthetic", "report.html")
print("report:", len(shared.to_rows()), "rows, chosen", shared.chosen)
