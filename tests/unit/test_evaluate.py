"""The evaluation result: its JSON shape, skipped tasks, extra rankers, the table and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.factories import make_shop

from features.loader import Dataset, LoadReport, fingerprint
from training.__main__ import main
from training.baselines import Popularity
from training.evaluate import evaluate, format_table
from training.metrics import metric_names
from training.revenue import metric_names as revenue_names
from training.tasks import CLIENT_TASKS, TASKS


def dataset(with_catalogue: bool = True) -> Dataset:
    tx, items, packages = make_shop()
    if not with_catalogue:
        items = packages = None
    return Dataset(tx, items, None, packages, LoadReport(), fingerprint(tx, items, None, packages))


@pytest.fixture(scope="module")
def result() -> dict:
    return evaluate(dataset(), test_days=30, k=5, progress=False)


def test_result_shape(result: dict) -> None:
    assert set(result) == {"split", "data", "tasks", "settings"}
    assert result["split"]["test_days"] == 30 and "cutoff" in result["split"]
    assert result["data"]["transactions"] == len(make_shop()[0])
    assert list(result["tasks"]) == list(TASKS)
    for name, task in result["tasks"].items():
        assert set(task) == {"metric", "scores"}, name
        assert task["metric"] == ("ndcg@5" if name in ("cross_sell", "next_basket") else "hr@5")
        assert task["scores"], f"no ranker scored {name}"
        money = (*revenue_names(5), "probability_source") if name in CLIENT_TASKS else ()
        for ranker, scores in task["scores"].items():
            assert tuple(scores) == (*metric_names(5), *money), (name, ranker)
            assert isinstance(scores["n"], int) and scores["n"] > 0
            assert all(0.0 <= scores[m] <= 1.0 for m in metric_names(5)[:-1])
    assert json.loads(json.dumps(result)) == result  # plain JSON, no numpy scalars


def test_each_task_lists_the_rankers_that_answer_it(result: dict) -> None:
    scores = {name: set(task["scores"]) for name, task in result["tasks"].items()}
    everywhere = {"popularity", "item_knn", "cooccurrence", "ease", "sar"}
    assert scores["cross_sell"] == scores["next_basket"] == everywhere | {"repurchase", "tifu_knn"}
    assert scores["basket_completion"] == everywhere | {"pricier_popular"}
    assert scores["upsell"] == everywhere | {"repurchase", "pricier_popular"}
    assert scores["service_package"] == everywhere | {"repurchase"}
    # the shop's trade-up pattern is what the upsell baseline exists for
    upsell = result["tasks"]["upsell"]["scores"]
    assert upsell["pricier_popular"]["hr@5"] >= upsell["popularity"]["hr@5"]


def test_the_published_baselines_record_their_choice_on_the_inner_split(result: dict) -> None:
    settings = result["settings"]
    assert set(settings) == {"ease", "sar", "tifu_knn"}
    assert settings["ease"]["chosen_on"] == settings["sar"]["chosen_on"] == "cross_sell ndcg@10"
    assert settings["tifu_knn"]["chosen_on"] == "next_basket ndcg@10"
    for name, chosen_by in (("ease", lambda c: f"{c['l2']:g}"), ("tifu_knn", lambda c: c["name"]),
                            ("sar", lambda c: f"{c['similarity']}/{c['half_life_days']:g}d"
                             if c["half_life_days"] else f"{c['similarity']}/no-decay")):
        entry = settings[name]
        assert len(entry["inner"]) >= 2, name
        assert entry["inner"][chosen_by(entry["chosen"])] == max(entry["inner"].values()), name
        assert entry["inner_split"]["method"] == "time" and entry["inner_split"]["why"], name


def test_tasks_the_data_cannot_support_are_skipped_with_a_reason() -> None:
    tasks = evaluate(dataset(with_catalogue=False), test_days=30, progress=False)["tasks"]
    assert tasks["upsell"] == {"skipped": "items have no product type or subcategory, so there is no 'same need' to measure"}
    assert tasks["upsell_price"] == {"skipped": "items have no subcategory, so there is no 'same kind, pricier' to measure"}
    assert tasks["service_package"] == {"skipped": "no items of kind service and no packages file"}
    assert "pricier_popular" not in tasks["basket_completion"]["scores"]


def test_another_ranker_joins_under_its_own_name() -> None:
    class NextBasketOnly(Popularity):
        def answers(self, task: str) -> bool:
            return task == "next_basket"

    tasks = evaluate(dataset(), test_days=30, rankers={"popularity": Popularity(), "model": NextBasketOnly()},
                     progress=False)["tasks"]
    assert set(tasks["next_basket"]["scores"]) == {"popularity", "model"}
    assert tasks["next_basket"]["scores"]["model"] == tasks["next_basket"]["scores"]["popularity"]
    assert set(tasks["cross_sell"]["scores"]) == {"popularity"}


def test_rankers_need_distinct_names_and_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="named"):
        evaluate(dataset(), rankers=[Popularity(), Popularity()], progress=False)
    with pytest.raises(ValueError):
        evaluate(dataset(), k=0, progress=False)


def test_format_table_marks_the_best_ranker_per_task(result: dict) -> None:
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["task", "ranker", "primary", "value"]
    for name in TASKS:
        assert any(line.startswith(name) and "*" in line for line in lines), name
    skipped = format_table({"tasks": {"upsell": {"skipped": "no prices"}}})
    assert "skipped" in skipped and "no prices" in skipped


def write_shop(folder: Path) -> Path:
    tx, items, packages = make_shop()
    folder.mkdir(parents=True, exist_ok=True)
    tx.to_parquet(folder / "transactions.parquet", index=False)
    items.to_parquet(folder / "items.parquet", index=False)
    packages.assign(items=packages["items"].map("|".join)).to_csv(folder / "packages.csv", index=False)
    return folder


def test_cli_writes_the_json_and_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_shop(tmp_path / "shop")
    out = tmp_path / "out" / "result.json"
    code = main(["evaluate", "--data", str(data), "--test-days", "30", "--k", "5", "--out", str(out), "--seed", "1"])
    assert code == 0
    result = json.loads(out.read_text())
    assert list(result["tasks"]) == list(TASKS)
    assert result["tasks"]["service_package"]["metric"] == "hr@5"
    cross_sell = result["tasks"]["cross_sell"]["scores"]
    # the model is scored under the revenue objective too, beside itself, with money figures
    assert {"model", "model_revenue"} <= set(cross_sell)
    assert cross_sell["model"]["probability_source"] == "model"
    assert cross_sell["popularity"]["probability_source"] == "rank-unmeasured"
    assert all(cross_sell[r]["revenue_expected@5"] >= 0 and cross_sell[r]["revenue_realised@5"] >= 0 for r in cross_sell)
    assert "model_revenue" not in result["tasks"]["next_basket"]["scores"]
    table = capsys.readouterr().out
    assert "basket_completion" in table and "revenue_realised@5" in table and "model_revenue" in table


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda tmp: tmp / "missing", "no such data folder"),
        (lambda tmp: write_shop(tmp / "shop"), "nothing left to train on"),
    ],
)
def test_cli_exits_non_zero_on_unusable_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              make_data: object, message: str) -> None:
    data = make_data(tmp_path)  # type: ignore[operator]
    code = main(["evaluate", "--data", str(data), "--test-days", "1000"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_bad_transactions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "transactions.csv").write_text("client_id,timestamp\n1,2024-01-01\n")
    assert main(["evaluate", "--data", str(tmp_path)]) == 2
    assert "item_id" in capsys.readouterr().err
