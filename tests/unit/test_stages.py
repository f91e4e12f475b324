"""Select's stage runner: any exception in one candidate's stage is that row's failure, stage named."""

from __future__ import annotations

from harness.select.config import SelectConfig
from harness.select.stages import CandidateRun, Plan, run_stages


def _plan() -> Plan:
    return Plan(SelectConfig("synthetic"), None, None, None, "data", {}, "cpu", "g")  # type: ignore[arg-type]


def test_a_crash_of_any_type_becomes_the_failure_of_its_stage(ctx):
    seen: list[str] = []

    def fine(ctx, plan, run):
        seen.append(f"fine {run.ref}")

    def lookup(ctx, plan, run):
        if run.ref == "bad":
            raise KeyError("ort_b1_ms")

    def after(ctx, plan, run):
        seen.append(f"after {run.ref}")

    runs = [run_stages(ctx, _plan(), CandidateRun(ref, ref), (fine, lookup, after)) for ref in ("bad", "good")]
    bad, good = runs
    assert (bad.status, bad.failed_stage, bad.failure) == ("failed", "lookup", "KeyError: 'ort_b1_ms'")
    assert good.ok and good.status == "ok"
    assert seen == ["fine bad", "fine good", "after good"]  # the failed run stopped; the other went on
    assert set(good.seconds) == {"fine", "lookup", "after"} and not good.workdir.exists()


def test_stage_callback_names_each_stage_as_it_starts(ctx):
    started: list[tuple[str, str]] = []
    run_stages(ctx, _plan(), CandidateRun("a", "a"), (lambda c, p, r: None,),
               on_stage=lambda run, stage: started.append((run.ref, stage)))
    assert started == [("a", "<lambda>")]


def test_quick_benchmarks_onnx_runtime_only_longer_budgets_eager_too():
    assert SelectConfig("synthetic").bench_effort.runtimes == ("onnxruntime",)
    for budget in ("standard", "full"):
        effort = SelectConfig("synthetic", budget=budget).bench_effort
        assert effort.runtimes == ("torch", "onnxruntime") and effort.rounds >= 3


def test_budgets_can_name_their_own_candidates(catalogue):
    protocol = catalogue.tasks.get("fashion-mnist").protocol
    quick = protocol.candidates_for("quick")
    assert len([c for c in quick if "." not in c]) >= 4 and "resnet18" not in quick  # >= 4 train offline
    assert protocol.candidates_for("standard") == protocol.candidates
    assert catalogue.tasks.get("synthetic").protocol.candidates_for("quick") == ("cifar_convnet_s", "cifar_resnet20")
