"""The catalogue: typed, refuses duplicates naming both plugins, suggests, wildcards, lazy."""

from __future__ import annotations

import pytest

from registry import (
    Backbone,
    Budget,
    Catalogue,
    Dataset,
    DuplicateNameError,
    Metric,
    PluginError,
    PluginInfo,
    Protocol,
    Task,
    UnknownNameError,
    UsageError,
    WeightTag,
)


def _never(*args, **kwargs):
    raise AssertionError("listing must not build models or load data")


def _backbone(name: str, tags=()) -> Backbone:
    return Backbone(name=name, builder=_never, head="fc", weights=tuple(WeightTag(t) for t in tags))


def _filled(entries) -> Catalogue:
    return Catalogue({"backbone": lambda table: [table.add(e, PluginInfo("p", "dist-p", "1.0")) for e in entries]})


def test_duplicate_names_both_plugins():
    cat = Catalogue()
    cat.backbones.add(_backbone("net_a"), PluginInfo("first", "dist-one", "1.0"))
    with pytest.raises(DuplicateNameError) as err:
        cat.backbones.add(_backbone("net_a"), PluginInfo("second", "dist-two", "2.0"))
    assert "dist-one" in str(err.value) and "dist-two" in str(err.value)


def test_unknown_name_suggests_close_matches():
    cat = _filled([_backbone("resnet18"), _backbone("resnet34"), _backbone("vgg11")])
    with pytest.raises(UnknownNameError) as err:
        cat.backbones.get("resnt18")
    assert err.value.suggestions[0] == "resnet18"
    assert "did you mean" in str(err.value)


def test_wildcards_and_weight_tags_without_building():
    cat = _filled([_backbone("resnet18", ["tv_in1k"]), _backbone("resnet50", ["tv_in1k", "tv2_in1k"]),
                   _backbone("vgg11", ["tv_in1k"])])
    assert [b.name for b in cat.backbones.list("resnet*")] == ["resnet18", "resnet50"]
    assert [f"{b.name}.{w.tag}" for b, w in cat.list_weights("*.tv2_in1k")] == ["resnet50.tv2_in1k"]
    assert len(cat.list_weights("*.tv_in1k")) == 3
    backbone, tag = cat.backbone("resnet50.tv2_in1k")
    assert (backbone.name, tag.tag) == ("resnet50", "tv2_in1k")
    with pytest.raises(UnknownNameError, match="tv3_in1k"):
        cat.backbone("resnet50.tv3_in1k")


@pytest.mark.parametrize("pattern", ["nope[", "res[n*", "[!x", "[]", "*.tv[_in1k"])
def test_a_malformed_wildcard_is_refused_not_matched_as_text(pattern):
    """fnmatch takes an unclosed '[' as a literal one: 'nope[' listed nothing, silently."""
    cat = _filled([_backbone("resnet18", ["tv_in1k"])])
    with pytest.raises(UsageError, match=r"is a malformed wildcard: the '\[' at character \d+ is never closed"):
        cat.backbones.list(pattern) if "." not in pattern else cat.list_weights(pattern)
    assert [b.name for b in cat.backbones.list("res[mn]et*")] == ["resnet18"]  # a closed set still works
    assert [b.name for b in cat.backbones.list("[]r]esnet18")] == ["resnet18"]  # ']' first is a member


def test_list_refuses_a_malformed_wildcard_in_one_line(run_cli):
    result = run_cli("list", "backbones", "nope[")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: PATTERN 'nope[' is a malformed wildcard") and result.stderr.count("\n") == 1
    picked = run_cli("select", "--task", "synthetic", "--candidates", "cifar_[", "--epochs", "1")
    assert picked.exit_code == 2 and "Error: --candidates 'cifar_[' is a malformed wildcard" in picked.stderr


def test_fill_is_lazy_and_once():
    calls = []
    cat = Catalogue({"metric": lambda table: calls.append(1)})
    assert calls == []
    assert len(cat.metrics) == 0 and list(cat.metrics) == [] and calls == [1]


def test_wrong_type_is_refused():
    cat = Catalogue()
    with pytest.raises(PluginError, match="pass a registry.Backbone"):
        cat.backbones.add(Metric("m", "quality", True, "x", compute=_never))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["ResNet", "1net", "res-net", "", "a b"])
def test_backbone_names_are_validated(bad):
    with pytest.raises(ValueError, match="invalid backbone name"):
        _backbone(bad)


def test_entries_validate_their_fields():
    with pytest.raises(ValueError, match="higher_is_better"):
        Metric("m", "quality", "yes", "x", compute=_never)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Metric("m", "speed", True, "x", compute=_never)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing budgets"):
        Protocol(input_size=32, budgets={"quick": Budget(epochs=1)})
    with pytest.raises(ValueError, match="class names"):
        Dataset("d", loader=_never, num_classes=3, class_names=("a", "b"))
    with pytest.raises(ValueError, match="default_tag"):
        Backbone("n", builder=_never, head="fc", default_tag="tv_in1k")
    budgets = {k: Budget(epochs=1) for k in ("quick", "standard", "full")}
    with pytest.raises(ValueError, match="at least one metric"):
        Task("t", "d", (), Protocol(input_size=8, budgets=budgets))


def test_find_spans_kinds(catalogue):
    kinds = [kind for kind, _ in catalogue.find("cifar10")]
    assert kinds == ["dataset", "task"]
    with pytest.raises(UnknownNameError):
        catalogue.find("no-such-thing")


def test_registry_does_not_import_harness():
    import subprocess
    import sys

    code = ("import sys, registry; "
            "assert not any(m == 'harness' or m.startswith('harness.') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
