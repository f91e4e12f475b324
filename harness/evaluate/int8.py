"""Does INT8 pay for this model on this machine? The typed verdict and the rule that decides it.

INT8 is offered only when both hold:

- **faster beyond noise**: at every batch size measured, INT8's median latency is at least
  :attr:`Int8Policy.min_speedup` times lower than FP32's, and INT8 won *every* interleaved round
  (at least :attr:`Int8Policy.min_rounds` of them): on a CPU without fast int8 dot products (no
  VNNI) INT8 is often slower, and a single lucky round on a busy machine is not a speed-up;
- **accurate enough**: its top-1 accuracy drop against the FP32 ONNX file, on the same images, is
  at most :attr:`Int8Policy.max_drop_points`. The drop that decides is measured on *validation*
  (the project's rule: choose on validation, report test); test is reported beside it, and used
  only for a model that has no validation images (the verdict says which).

An INT8 model slower than its FP32 one is never offered, whatever ``--force-int8`` writes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from harness.onnx.quantize import OpCount
from registry import UsageError

if TYPE_CHECKING:
    from harness.evaluate.paired import PairedDiff


@dataclass(frozen=True)
class Int8Policy:
    """When INT8 is offered: its largest accuracy drop (points on the deciding split), its smallest
    speed-up (FP32 ms / INT8 ms at every batch size) and the fewest interleaved rounds it is timed in."""

    max_drop_points: float = 1.0
    min_speedup: float = 1.1
    min_rounds: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.max_drop_points <= 100:  # false for nan too
            raise UsageError("{param} must be between 0 and 100 points", param="int8_max_drop")
        if not (math.isfinite(self.min_speedup) and self.min_speedup >= 1):
            raise UsageError("{param} must be at least 1 (INT8 slower than FP32 is never offered)",
                             param="int8_min_speedup")
        if self.min_rounds < 1:
            raise UsageError("{param} must be at least 1", param="int8_rounds")


@dataclass(frozen=True)
class SpeedCheck:
    """FP32 against INT8 at one batch size: pooled medians (ms) and FP32/INT8 per round."""

    batch: int
    fp32_ms: float
    int8_ms: float
    round_ratios: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """How many times faster INT8 is (below 1: slower)."""
        return round(self.fp32_ms / self.int8_ms, 2) if self.int8_ms > 0 else 0.0

    @property
    def rounds_won(self) -> int:
        return sum(r > 1 for r in self.round_ratios)


@dataclass(frozen=True)
class AccuracyCheck:
    """Top-1 accuracy of the FP32 and INT8 ONNX files on the same images of one split, and the paired
    difference INT8 - FP32 (fractions) with its 95% interval."""

    split: str  # val | test
    fp32: float
    int8: float
    diff: PairedDiff
    images: str = ""  # which images (EvalSet.text())

    @property
    def drop_points(self) -> float:
        """Points of accuracy INT8 loses (negative: it gained)."""
        return round(-100 * self.diff.diff, 2)


def _speed_problems(speed: tuple[SpeedCheck, ...], policy: Int8Policy) -> list[str]:
    if not speed:
        return ["speed not measured"]
    slower = [s for s in speed if s.ratio < 1]
    if slower:
        return ["slower than FP32 (" + ", ".join(f"{s.ratio}x at batch {s.batch}" for s in slower) + ")"]
    rounds = min(len(s.round_ratios) for s in speed)
    if rounds < policy.min_rounds:
        return [f"speed measured in {rounds} round(s); {policy.min_rounds} are needed to tell it from noise"]
    noisy = [s for s in speed if s.ratio < policy.min_speedup or s.rounds_won < len(s.round_ratios)]
    if noisy:
        return ["not faster beyond noise (" + ", ".join(
            f"{s.ratio}x at batch {s.batch}, faster in {s.rounds_won} of {len(s.round_ratios)} rounds"
            for s in noisy) + f"; needs {policy.min_speedup}x and every round)"]
    return []


def decide(speed: tuple[SpeedCheck, ...], accuracy: tuple[AccuracyCheck, ...],
           policy: Int8Policy) -> tuple[bool, str, str]:
    """(offered, why, the split the accuracy drop was judged on): every failed condition is named."""
    deciding = next((a for a in accuracy if a.split == "val"), None) or next(
        (a for a in accuracy if a.split == "test"), None)
    problems = _speed_problems(speed, policy)
    if deciding is None:
        problems.append("accuracy not measured")
    elif deciding.drop_points > policy.max_drop_points:
        problems.append(f"loses {deciding.drop_points:.2f} points on {deciding.split} "
                        f"(at most {policy.max_drop_points:g} allowed)")
    split = deciding.split if deciding else ""
    if problems:
        return False, "; ".join(problems), split
    return True, f"faster at every batch and within {policy.max_drop_points:g} points on {split}", split


@dataclass(frozen=True)
class Int8Verdict:
    """Whether the INT8 variant of a model is offered, with the evidence: op types quantised (read
    back from the INT8 graph), per-channel weights, calibration images, file sizes, speed per batch
    size, accuracy on validation and test, the policy applied, threads, and timing warnings."""

    offered: bool
    reason: str
    decided_on: str  # the split whose accuracy drop decided: val, or test when there is no validation
    ops: tuple[OpCount, ...]
    per_channel: bool
    calibration_images: int
    fp32_mb: float
    int8_mb: float
    speed: tuple[SpeedCheck, ...]
    accuracy: tuple[AccuracyCheck, ...]
    policy: Int8Policy
    threads: int
    timing: str | None = None  # why the timings may be unreliable (busy machine, spread)
    preprocess_error: str | None = None

    @property
    def size_ratio(self) -> float:
        """INT8 file size / FP32 file size."""
        return round(self.int8_mb / self.fp32_mb, 2) if self.fp32_mb else 0.0

    def check(self, split: str) -> AccuracyCheck | None:
        return next((a for a in self.accuracy if a.split == split), None)

    def quantised_text(self) -> str:
        """``Conv 21/21, Gemm 1/1, Add 9/9`` (compute ops first; op types with none quantised left out)."""
        ranked = sorted(self.ops, key=lambda o: (o.op_type not in ("Conv", "Gemm", "MatMul"), o.op_type))
        return ", ".join(o.text() for o in ranked if o.quantised) or "none"

    def summary(self) -> str:
        """The table cell: ``1.8-2.4x faster, -0.2 pts, 0.27x size`` or ``not offered: slower ...``."""
        if not self.offered:
            return f"not offered: {self.reason}"
        ratios = sorted(s.ratio for s in self.speed)
        speed = f"{ratios[0]}x" if ratios[0] == ratios[-1] else f"{ratios[0]}-{ratios[-1]}x"
        deciding = self.check(self.decided_on)
        drop = f", {-deciding.drop_points:+.1f} pts" if deciding else ""
        return f"{speed} faster{drop}, {self.size_ratio}x size"

    def line(self) -> str:
        """One line with every figure, for a person deciding whether to ship it."""
        speed = ", ".join(f"b{s.batch} {s.fp32_ms:.3g}->{s.int8_ms:.3g} ms ({s.ratio}x, faster in {s.rounds_won}/"
                          f"{len(s.round_ratios)} rounds)" for s in self.speed)
        acc = "; ".join(f"{a.split} {a.fp32:.4f}->{a.int8:.4f} ({-a.drop_points:+.2f} pts "
                        f"[{a.diff.low * 100:+.2f}, {a.diff.high * 100:+.2f}], {a.diff.n_images} images)"
                        for a in self.accuracy)
        return (f"INT8 {'offered' if self.offered else 'not offered'}: {self.reason}. Speed {speed}, "
                f"{self.threads} threads; accuracy {acc}; size {self.int8_mb:.3g}/{self.fp32_mb:.3g} MB "
                f"({self.size_ratio}x); quantised {self.quantised_text()}"
                + (f"; timings may be unreliable: {self.timing}" if self.timing else ""))

    def columns(self) -> dict[str, Any]:
        """Flat columns for a leaderboard row (CSV needs scalars; JSON keeps the same keys); the speed-ups
        at batch 1 and 32 (select's batch sizes; the full list is in ``as_dict()``)."""
        deciding = self.check(self.decided_on)
        ratio = {s.batch: s.ratio for s in self.speed}
        return {"int8": self.summary(), "int8_offered": self.offered, "int8_speedup_b1": ratio.get(1),
                "int8_speedup_b32": ratio.get(32),
                "int8_drop_pts": deciding.drop_points if deciding else None,
                "int8_drop_on": self.decided_on or None, "int8_size_ratio": self.size_ratio,
                "int8_ops": self.quantised_text()}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy"] = [{**{k: v for k, v in asdict(a).items() if k != "diff"}, "diff": a.diff.as_dict(),
                             "drop_points": a.drop_points} for a in self.accuracy]
        data["speed"] = [{**asdict(s), "ratio": s.ratio} for s in self.speed]
        data["size_ratio"] = self.size_ratio
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Verdict:
        from harness.evaluate.paired import PairedDiff

        fields = {k: v for k, v in data.items() if k not in ("size_ratio", "summary")}
        fields["ops"] = tuple(OpCount(**o) for o in data["ops"])
        fields["speed"] = tuple(SpeedCheck(s["batch"], s["fp32_ms"], s["int8_ms"], tuple(s["round_ratios"]))
                                for s in data["speed"])
        fields["accuracy"] = tuple(AccuracyCheck(a["split"], a["fp32"], a["int8"], PairedDiff(**a["diff"]),
                                                 a.get("images", "")) for a in data["accuracy"])
        fields["policy"] = Int8Policy(**data["policy"])
        return cls(**fields)
