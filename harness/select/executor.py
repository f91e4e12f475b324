"""Executors: who runs the candidates' stages. The seam where selection scales out.

An executor takes the candidates' runs and returns them finished. :class:`SerialExecutor` runs
them one after another in this process. Another executor (a process pool, a Ray cluster) runs
:func:`~harness.select.stages.run_stages` elsewhere with the training stages, gets the runs back,
and runs :data:`~harness.select.stages.DRIVER_STAGES` here, one at a time, so that every latency
in one table comes from the same machine under the same conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from harness.select.stages import STAGES, CandidateRun, Plan, run_stages

if TYPE_CHECKING:
    from harness.context import Context


class Executor(Protocol):
    def run(self, ctx: Context, plan: Plan, runs: Sequence[CandidateRun]) -> list[CandidateRun]:
        """Run every stage of every candidate; return the runs in the order given."""
        ...


class SerialExecutor:
    """Every stage of every candidate, in order, in this process."""

    def run(self, ctx: Context, plan: Plan, runs: Sequence[CandidateRun]) -> list[CandidateRun]:
        bar = ctx.progress.bar(len(runs) * len(STAGES), "select", unit="stage")

        def on_stage(run: CandidateRun, stage: str) -> None:
            bar.n = sum(len(r.seconds) for r in runs)  # stages finished (failed ones count too)
            bar.set_description(f"{run.label}: {stage}")

        try:
            return [run_stages(ctx, plan, run, STAGES, on_stage=on_stage) for run in runs]
        finally:
            bar.close()
