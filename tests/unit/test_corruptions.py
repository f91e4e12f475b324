"""The corruption suite (harness/evaluate/corruptions.py) does what it says: uint8 in and out, the
same bytes for the same seed, more damage at each severity, brightness equal to an HSV round trip,
parameters adapted to the image side; and the robustness record's summary and interval."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import pytest

from harness.evaluate.corruptions import CORRUPTIONS, corrupt
from harness.evaluate.robustness import CorruptionScore, RobustnessReport, bootstrap_intervals
from plugins.synthetic import load_synthetic
from registry import UsageError


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    """64 real test images of the synthetic task in colour (32 px) and as greyscale 28 px crops."""
    colour = load_synthetic("test").images[:64].numpy()
    grey = colour.mean(axis=1, keepdims=True).round().astype(np.uint8)[:, :, 2:30, 2:30].copy()
    return {"colour": colour, "grey": grey}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
@pytest.mark.parametrize("kind", ["colour", "grey"])
def test_each_corruption_keeps_dtype_and_shape_is_seeded_and_worsens_with_severity(images, name, kind):
    x = images[kind]
    damage = []
    for severity in range(1, 6):
        out = corrupt(x, name, severity, seed=3)
        assert out.dtype == np.uint8 and out.shape == x.shape
        assert np.array_equal(out, corrupt(x, name, severity, seed=3))  # deterministic
        damage.append(float(np.abs(out.astype(np.int16) - x).mean()))
    assert all(later > earlier for earlier, later in itertools.pairwise(damage)), damage
    if CORRUPTIONS[name].family == "noise":  # random: another seed, other noise
        assert not np.array_equal(corrupt(x, name, 3, seed=3), corrupt(x, name, 3, seed=4))


def test_a_corruption_does_not_depend_on_what_ran_before(images):
    x = images["colour"]
    first = corrupt(x, "gaussian_noise", 2)
    corrupt(x, "shot_noise", 5)
    corrupt(x, "impulse_noise", 1)
    assert np.array_equal(first, corrupt(x, "gaussian_noise", 2))


def test_brightness_is_the_reference_hsv_round_trip(images):
    """ImageNet-C adds to the HSV value and converts back; the vectorised version must agree pixel
    for pixel (within rounding) with Python's own colorsys doing exactly that."""
    x = images["colour"][:4]
    ours = corrupt(x, "brightness", 3).astype(int)
    shift = CORRUPTIONS["brightness"].params[2]
    pixels = x.transpose(0, 2, 3, 1).reshape(-1, 3) / 255.0
    expected = []
    for r, g, b in pixels:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb(h, s, min(1.0, v + shift)))
    reference = (np.clip(np.array(expected), 0, 1) * 255 + 0.5).astype(int)
    assert np.abs(ours.transpose(0, 2, 3, 1).reshape(-1, 3) - reference).max() <= 1


def test_blur_keeps_a_flat_image_and_scales_its_sigma_with_the_side():
    flat = np.full((2, 1, 28, 28), 77, np.uint8)
    assert np.array_equal(corrupt(flat, "gaussian_blur", 5), flat)
    blur = CORRUPTIONS["gaussian_blur"]
    assert blur.parameter(5, 32) == 1.0 and blur.parameter(5, 28) == pytest.approx(0.875)
    assert CORRUPTIONS["jpeg"].parameter(5, 28) == 40  # per-pixel parameters are kept as published


@pytest.mark.parametrize(("args", "needle"), [
    ((np.zeros((1, 1, 8, 8), np.uint8), "fog", 1), "unknown corruption 'fog'"),
    ((np.zeros((1, 1, 8, 8), np.uint8), "jpeg", 6), "severity"),
    ((np.zeros((1, 1, 8, 8), np.float32), "jpeg", 1), "uint8"),
])
def test_bad_requests_are_usage_errors(args, needle):
    with pytest.raises(UsageError, match=needle):
        corrupt(*args)


def test_the_report_summarises_and_round_trips():
    from harness.predictions.stored import eval_set

    scores = tuple(CorruptionScore(name, s, 0.9 - 0.1 * s) for name in ("jpeg", "contrast") for s in range(1, 6))
    report = RobustnessReport("m@1", "synthetic", eval_set("robustness", "synthetic", "test", range(10), 300), 0.8,
                              scores, 0, "new export", 1.0, corruption_ci95=(0.5, 0.7), drop_ci95=(0.1, 0.3))
    assert report.corruption_accuracy == pytest.approx(0.6)
    assert report.relative_drop == pytest.approx(0.25)
    assert [r["corruption"] for r in report.table()] == ["contrast", "jpeg"]  # the suite's order
    assert report.table()[0]["s5"] == pytest.approx(0.4)
    assert RobustnessReport.from_dict(report.as_dict()).as_dict() == report.as_dict()
    assert "relative drop 25.0% [10.0%, 30.0%]" in report.summary()


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    clean = rng.random(2000) < 0.9
    corrupted = (rng.random((40, 2000)) < 0.7) & clean
    (low, high), drop = bootstrap_intervals(clean, corrupted)
    assert low < corrupted.mean() < high and drop is not None
    assert drop[0] < (clean.mean() - corrupted.mean()) / clean.mean() < drop[1]
    (small_low, small_high), _ = bootstrap_intervals(clean[:200], corrupted[:, :200])
    assert small_high - small_low > high - low


def test_a_suite_is_made_once_per_image_set_and_kept_only_when_small(images, monkeypatch):
    from harness.evaluate import robustness

    x = images["grey"][:8]
    first = list(robustness.corrupted_sets(x, ("contrast", "jpeg"), 0, ("digest",)))
    assert [(n, s) for n, s, _ in first] == [(n, s) for n in ("contrast", "jpeg") for s in range(1, 6)]
    again = list(robustness.corrupted_sets(x, ("contrast", "jpeg"), 0, ("digest",)))
    assert all(a[2] is b[2] for a, b in zip(first, again, strict=True))  # reused, not made again
    monkeypatch.setattr(robustness, "CACHE_BYTES", 0)
    robustness._SUITE_CACHE.clear()
    fresh = list(robustness.corrupted_sets(x, ("contrast",), 0, ("other",)))
    assert not robustness._SUITE_CACHE and np.array_equal(fresh[0][2], first[0][2])
