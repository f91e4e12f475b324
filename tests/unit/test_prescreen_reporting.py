"""What the prescreen's outputs say: the leaderboard names the method beside the score, a rank
check after --top-k says it covers only the survivors, and ``zoo list`` shows a quality figure
for every pretraining method, contrastive included."""

from __future__ import annotations

import json

from harness.select.leaderboard import render_rows, rows_from_store
from harness.select.rankcheck import rank_check
from registry import keys
from registry.store import ModelStore


def _version(store, tmp_path, name: str, **kwargs):
    weights = tmp_path / f"{name}.bin"
    weights.write_bytes(name.encode())
    return store.register(name, files={keys.ROLE_WEIGHTS: weights}, **kwargs)


def test_leaderboard_names_the_prescreen_method_with_its_score(ctx, tmp_path):
    metrics = {keys.TEST: {"accuracy": 0.8}, keys.VAL: {"accuracy": 0.8}, keys.PRESCREEN: {"method": "ncti",
                                                                                         "score": 1.25}}
    _version(ctx.store, tmp_path, "synthetic", backbone="cifar_convnet_s", kind="finetune", task="synthetic",
             metrics=metrics, tags={keys.TAG_SELECT: "1", keys.TAG_CANDIDATE: "net", keys.TAG_SELECT_GROUP: "1"})
    [row] = rows_from_store(ctx, "synthetic")
    assert (row.prescreen, row.prescreen_method) == (1.25, "ncti")
    assert row.as_dict()["prescreen_method"] == "ncti"
    assert "prescreen,prescreen_method" in render_rows([row], "csv", "accuracy").splitlines()[0]
    assert "prescreen: ncti score of each row" in render_rows([row], "table", "accuracy")


def test_rank_check_after_top_k_says_it_covers_only_the_survivors():
    truth, scores = {"a": 0.1, "b": 0.2}, {"a": 1.0, "b": 2.0}
    cut = rank_check("sfda", scores, truth, {"parameter count": {"a": 1, "b": 2}}, cut_from=5)
    assert "cover only the 2 --top-k survivors of 5 candidates prescreened" in "\n".join(cut.lines())
    assert cut.as_dict()["covers"] == "top-k survivors" and cut.as_dict()["prescreened"] == 5
    whole = rank_check("sfda", scores, truth, {"parameter count": {"a": 1, "b": 2}})
    assert whole.as_dict()["covers"] == "all candidates" and "survivors" not in "\n".join(whole.lines())


def test_zoo_list_shows_a_quality_for_contrastive_models(run_cli, tmp_path):
    with ModelStore() as store:
        for method, summary in (("contrastive", {"val_pair_accuracy": 0.31}), ("supervised", {"val_accuracy": 0.9}),
                                ("autoencoder", {"val_reconstruction_mse": 0.02})):
            _version(store, tmp_path, f"zoo-mini-{method}", backbone="cifar_resnet8", kind="pretrain",
                     dataset="synthetic", recipe={"method": method}, metrics={keys.PRETRAIN: summary},
                     tags={"zoo": "mini", "zoo_key": method})
    listed = {r["method"]: r for r in json.loads(run_cli("zoo", "list", "mini", "--format", "json").stdout)}
    assert listed["contrastive"]["val_pair_accuracy"] == 0.31
    assert listed["supervised"]["val_accuracy"] == 0.9
    assert listed["autoencoder"]["val_reconstruction_mse"] == 0.02
