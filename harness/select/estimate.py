"""What ``select`` is about to do, and about how long it will take on this machine, printed before
the first candidate trains.

A user who starts a selection on their own photos should know within seconds whether it is a
coffee or an afternoon. The estimate is measured, not looked up: each candidate that will train
is built and takes five optimiser steps on random images at the budget's batch and input size
(two warm up; the median of the other three is timed), which gives its training images per second on
*this* machine under *its* current load. Validation after each epoch and the final validation
and test scoring run forward only, about a third of a training step per image. Export, parity
and the latency benchmark cost about ``STAGE_OVERHEAD_S`` per candidate on 2 cores for the small
nets. Seeds already in the store cost nothing. The probe itself takes ~0.1-0.5 s per small net.

The estimate is printed as a range (x0.8 to x1.5), since the probe cannot see later load changes
or the first epoch's warm-up; benchmarks/own_data_quick.py prints it next to the time taken.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.context import Context
    from harness.select.stages import Plan

STAGE_OVERHEAD_S = 8.0
"""Export, ONNX parity and the latency benchmark of one small candidate (measured: 5-10 s on 2 cores)."""
WARMUP_STEPS, TIMED_STEPS = 2, 3
"""The probe's steps: the first ones allocate and pick kernels; the median of the rest is the speed."""
FORWARD_SHARE = 1 / 3
"""Scoring an image costs about this share of training on it (forward only, no backward)."""


@dataclass(frozen=True)
class CandidateCost:
    """One candidate's measured training speed and its estimated seconds (0 when cached)."""

    ref: str
    train_img_s: float
    seconds: float
    cached_seeds: int = 0


@dataclass(frozen=True)
class Estimate:
    """The plan in numbers: what trains, on how many images, and the seconds it should take."""

    candidates: tuple[CandidateCost, ...]
    epochs: int
    seeds: int
    train_images: int
    val_images: int
    test_images: int
    input_size: int
    time_limit_s: float | None = None
    rungs: tuple[tuple[int, int], ...] = ()  # successive halving: (candidates, cumulative epochs) per rung
    halving_extra_s: float = 0.0  # the rungs after the first, at the candidates' mean speed

    @property
    def seconds(self) -> float:
        total = sum(c.seconds for c in self.candidates) + self.halving_extra_s
        if self.time_limit_s is not None:  # the rungs stop at the limit; the stages after them do not
            total = min(total, self.time_limit_s + STAGE_OVERHEAD_S * len(self.candidates))
        return total

    def lines(self) -> list[str]:
        """What select prints before it starts: the plan, then the estimate."""
        seeds = f" x {self.seeds} seeds" if self.seeds > 1 else ""
        cached = sum(1 for c in self.candidates if c.cached_seeds == self.seeds)
        epochs = f"x {self.epochs} epochs" if not self.rungs else (
            f"by successive halving to {self.epochs} epochs (rungs of " + ", ".join(
                f"{n} x {e} ep" for n, e in self.rungs) + ")")
        plan = (f"plan: {len(self.candidates)} candidates{seeds} {epochs} at {self.input_size}px on "
                f"{self.train_images:,} training images; choose on {self.val_images:,} validation images, report "
                f"on {self.test_images:,} test images" + (f" ({cached} already in the store)" if cached else ""))
        if cached == len(self.candidates):
            return [plan, "estimate: nothing to train (every candidate is in the store): seconds to read it back"]
        low, high = 0.8 * self.seconds, 1.5 * self.seconds
        speeds = ", ".join(f"{c.ref} {c.train_img_s:,.0f} img/s" for c in self.candidates if c.seconds)
        return [plan, f"estimate: {duration_text(low)}-{duration_text(high)} on this machine"
                + (f" (training speed measured now: {speeds})" if speeds else "")
                + (f"; --time-limit stops training at {duration_text(self.time_limit_s)}" if self.time_limit_s else "")]


def duration_text(seconds: float) -> str:
    """A duration for people: 0.001 s, 45 s, 12 min, 1.5 h (select's estimate and halving's log)."""
    if seconds < 1:
        return f"{seconds:.3g} s"
    if seconds < 90:
        return f"{round(seconds)} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def train_speed(ctx: Context, plan: Plan, ref: str, num_classes: int) -> float:
    """Training images per second of candidate ``ref`` at the plan's batch and input size, from
    optimiser steps on random images (see :data:`WARMUP_STEPS`)."""
    import torch

    from harness.data.preprocess import resolve_preprocess
    from harness.environment import select_device

    device = select_device(ctx.device)
    source = plan.model(ctx, ref)
    pre = resolve_preprocess(source, plan.recipe.input_size or plan.task.protocol.input_size)
    batch = plan.recipe.batch_size
    model = source.build(num_classes).to(device).train()
    inputs = torch.randn(batch, pre.channels, pre.input_size, pre.input_size, device=device)
    if pre.channels_last:
        model, inputs = model.to(memory_format=torch.channels_last), inputs.contiguous(
            memory_format=torch.channels_last)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    timings = []
    for _ in range(WARMUP_STEPS + TIMED_STEPS):
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - started)
    return batch / statistics.median(timings[WARMUP_STEPS:])


def estimate(ctx: Context, plan: Plan, refs: list[str], time_limit_s: float | None = None) -> Estimate:
    """Measure each candidate that will train (see the module docstring) and add up the stages."""
    from harness.select.cache import cached_version
    from harness.select.stages import seed_fingerprints

    recipe, task = plan.recipe, plan.task
    n_train, n_val, n_test, classes = plan.split_sizes(ctx)
    rungs = halving_rungs(len(refs), recipe.epochs) if plan.halving else ()
    first = rungs[0][1] if rungs else recipe.epochs
    costs = []
    for ref in refs:
        cached = sum(1 for _, fp in seed_fingerprints(ctx, plan, ref)
                     if plan.config.use_cache and cached_version(ctx, task.name, fp) is not None)
        training = plan.config.seeds - cached
        if training == 0:
            costs.append(CandidateCost(ref, 0.0, 0.0, cached))
            continue
        speed = train_speed(ctx, plan, ref, classes)
        per_seed = (first * (n_train + FORWARD_SHARE * n_val) + FORWARD_SHARE * (n_val + n_test)) / speed
        costs.append(CandidateCost(ref, speed, training * per_seed + STAGE_OVERHEAD_S, cached))
    speeds = [c.train_img_s for c in costs if c.train_img_s]
    extra = 0.0
    if rungs and speeds:  # later rungs: who continues is not known yet, so the mean speed
        mean = statistics.mean(speeds)
        for (n, e), (_, before) in zip(rungs[1:], rungs[:-1], strict=True):
            extra += n * ((e - before) * (n_train + FORWARD_SHARE * n_val) + FORWARD_SHARE * (n_val + n_test)) / mean
    return Estimate(tuple(costs), recipe.epochs, plan.config.seeds, n_train, n_val, n_test,
                    recipe.input_size or task.protocol.input_size, time_limit_s, rungs, extra)


def halving_rungs(candidates: int, epochs: int) -> tuple[tuple[int, int], ...]:
    """(candidates trained, cumulative epochs) of each rung when nothing fails and no time limit
    stops it: the best third go on (rounded down, at least one; a lone one goes to the last rung)."""
    from harness.select.halving import schedule

    return schedule(candidates, epochs)
