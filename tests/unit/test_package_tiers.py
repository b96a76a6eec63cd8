"""Service packages: the demo packages `prepare` ships with Complete Journey, and the tier rule
(a client holding a tier of a line is offered the next one, never a lower or equal one)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from support.factories import SHOP_CONFIG, make_transactions

from features.completejourney import DEMO_PACKAGES, SERVICE_DEPARTMENTS, demo_packages, prepare
from features.loader import load_dataset
from scoring.kinds.service_package import package_lines
from scoring.recommender import Recommender
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender
from training.model_answers import rank_queries
from training.tasks import TaskQueries

TIERS = {"basic": 1, "standard": 2, "premium": 3}
#: The real slice the tests prepare (as tests/conftest.py's `slice_dir`): 150 households, seed 0.
SLICE_HOUSEHOLDS = 150


def line_of(package_id: str) -> str:
    return package_id.rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`features prepare` on the real 150-household slice, into a folder of our own."""
    out = tmp_path_factory.mktemp("cj")
    prepare(out, SLICE_HOUSEHOLDS, seed=0)
    return out


def test_the_demo_file_is_three_nested_tiers_per_service_line() -> None:
    table = pd.read_csv(DEMO_PACKAGES, comment="#", dtype=str)
    assert list(table.columns) == ["package_id", "name", "items", "tier", "price"]
    for line, rows in table.groupby(table["package_id"].map(line_of)):
        rows = rows.assign(rank=rows["tier"].map(TIERS)).sort_values("rank")
        assert rows["rank"].tolist() == [1, 2, 3], line
        members = [row.split("|") for row in rows["items"]]
        assert [len(m) for m in members] == [1, 2, 3], line
        assert members[0] == members[1][:1] and members[1] == members[2][:2], f"{line}: each tier adds to the one below"
        prices = rows["price"].astype(float).tolist()
        assert prices == sorted(prices) and len(set(prices)) == 3, f"{line}: a higher tier costs more"


def test_prepare_writes_the_demo_packages_whose_items_are_real_services(prepared: Path) -> None:
    ds = load_dataset(prepared)
    assert ds.packages is not None and ds.report.tables["packages"]["rejected"] == {}
    items = ds.items.set_index("item_id")
    bought = set(ds.transactions.loc[ds.transactions["quantity"] > 0, "item_id"])
    for row in ds.packages.itertuples():
        assert row.tier in TIERS and row.price > 0, row
        assert set(row.items) <= bought, f"{row.package_id}: every member is bought in the slice"
        assert (items.loc[row.items, "kind"] == "service").all(), row.package_id
        assert set(items.loc[row.items, "category"]) <= SERVICE_DEPARTMENTS, row.package_id
    # the slice lacks the chef shoppe's apple slices: its standard and premium are left out whole
    every = pd.read_csv(DEMO_PACKAGES, comment="#", dtype=str)
    complete = every["items"].str.split("|").map(lambda ids: set(ids) <= set(items.index))
    assert sorted(ds.packages["package_id"]) == sorted(every.loc[complete, "package_id"])
    assert "chef_shoppe_basic" in set(ds.packages["package_id"])
    assert not {"chef_shoppe_standard", "chef_shoppe_premium"} & set(ds.packages["package_id"])


def test_only_the_counters_are_services(prepared: Path) -> None:
    items = pd.read_parquet(prepared / "items.parquet")
    services = items[items["kind"] == "service"]
    assert set(services["category"]) <= SERVICE_DEPARTMENTS and len(services) > 0
    for department in ("TRAVEL & LEISURE", "POSTAL CENTER", "PHOTO & VIDEO"):
        assert (items.loc[items["category"] == department, "kind"] == "product").all(), department
    apples = items["name"].str.startswith("Apples Braeburn")
    assert apples.any() and (items.loc[apples, "kind"] == "product").all()


def test_packages_missing_an_item_are_left_out_whole(tmp_path: Path) -> None:
    csv = tmp_path / "packages.csv"
    csv.write_text("# a comment line\npackage_id,name,items,tier,price\n"
                   "a_basic,A Basic,s1,basic,2.0\na_standard,A Standard,s1|s2,standard,3.8\n"
                   "b_basic,B Basic,s9,basic,1.0\n")
    kept = demo_packages(pd.DataFrame({"item_id": ["s1", "s3", "s9"]}), csv)
    assert kept["package_id"].tolist() == ["a_basic", "b_basic"]
    assert kept["price"].tolist() == [2.0, 1.0]


def test_prepare_writes_no_packages_file_when_none_is_complete(tmp_path: Path, monkeypatch) -> None:
    import features.completejourney as cj

    (tmp_path / "packages.parquet").write_text("from an older slice")
    monkeypatch.setattr(cj, "demo_packages", lambda items: pd.DataFrame(columns=["package_id", "name", "items"]))
    counts = cj.prepare(tmp_path, 20, seed=0)
    assert counts["packages"] == 0 and not (tmp_path / "packages.parquet").exists()
    assert load_dataset(tmp_path).packages is None


# -- the tier rule, on a hand-made shop: two service lines whose items have no subcategory --------

def two_lines_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Lines "wash" and "cut" (basic ⊂ standard ⊂ premium) and no subcategories, as Complete
    Journey's chef shoppe. Clients h0..h9 hold wash basic, h10..h14 wash standard; 40 clients
    buy groceries and one service of each line now and then."""
    rows: list[tuple] = []
    for n in range(60):
        client = f"h{n}"
        for day in range(n % 5, 90, 7):
            rows.append((client, "milk", f"2024-01-{1 + day % 28:02d}", None, 1.0, 1.0))
            rows.append((client, "bread" if n % 2 else "eggs", f"2024-02-{1 + day % 28:02d}", None, 1.0, 2.0))
        if n < 15:
            rows.append((client, "wash1", "2024-03-02", None, 1.0, 5.0))
        if 10 <= n < 15:
            rows.append((client, "wash2", "2024-03-09", None, 1.0, 4.0))
        if 20 <= n < 35:
            rows.append((client, "cut1", "2024-03-03", None, 1.0, 3.0))
        if 30 <= n < 40:
            rows.append((client, "cut2", "2024-03-10", None, 1.0, 2.0))
        if n % 9 == 0:
            rows.append((client, "wash3", "2024-03-20", None, 1.0, 6.0))
            rows.append((client, "cut3", "2024-03-21", None, 1.0, 6.0))
    services = ["wash1", "wash2", "wash3", "cut1", "cut2", "cut3"]
    items = pd.DataFrame({"item_id": ["milk", "bread", "eggs", *services],
                          "name": ["Milk", "Bread", "Eggs", *[s.title() for s in services]],
                          "category": ["dairy", "bakery", "dairy"] + ["counter"] * 6,
                          "kind": ["product"] * 3 + ["service"] * 6})
    packages = pd.DataFrame({
        "package_id": ["wash_basic", "wash_standard", "wash_premium", "cut_basic", "cut_standard", "cut_premium"],
        "name": ["Wash Basic", "Wash Standard", "Wash Premium", "Cut Basic", "Cut Standard", "Cut Premium"],
        "items": [["wash1"], ["wash1", "wash2"], ["wash1", "wash2", "wash3"],
                  ["cut1"], ["cut1", "cut2"], ["cut1", "cut2", "cut3"]],
        "tier": ["basic", "standard", "premium"] * 2, "price": [5.0, 8.5, 13.5, 3.0, 4.75, 9.9]})
    return make_transactions(rows), items, packages


@pytest.fixture(scope="module")
def lines_model() -> Recommender:
    return fit_recommender(TrainContext.build(*two_lines_shop()), SHOP_CONFIG)


def offers(model: Recommender, client: str) -> dict[str, dict]:
    """The client's package offers (the answers that list member items) by package id."""
    return {s["item_id"]: s for s in model.suggest(client, "service_package", 20) if "items" in s}


def test_a_basic_holder_is_offered_the_standard_of_that_line_first(lines_model: Recommender) -> None:
    got = offers(lines_model, "h1")  # holds wash basic only
    assert "wash_basic" not in got, "never offer the tier the client holds"
    assert got["wash_standard"]["reason"] == "next tier of your current plan Wash Basic"
    assert got["wash_standard"]["items"] == ["wash1", "wash2"] and got["wash_standard"]["price"] == 8.5
    answer = lines_model.suggest("h1", "service_package", 20)
    assert answer[0]["item_id"] == "wash_standard", [s["item_id"] for s in answer]
    assert not got["wash_premium"]["reason"].startswith("next tier"), "only the next tier is 'the next tier'"
    # the other line is not the client's plan: its basic stays on offer, and nothing of it is a "next tier"
    assert "cut_basic" in got
    assert not any(got[p]["reason"].startswith("next tier") for p in got if p.startswith("cut_"))


def test_a_standard_holder_is_offered_premium_and_nothing_lower(lines_model: Recommender) -> None:
    got = offers(lines_model, "h11")  # holds wash basic and wash standard
    assert not {"wash_basic", "wash_standard"} & set(got)
    assert got["wash_premium"]["reason"] == "next tier of your current plan Wash Standard"


def test_a_client_holding_nothing_gets_no_next_tier(lines_model: Recommender) -> None:
    got = offers(lines_model, "h50")
    assert {"wash_basic", "cut_basic"} <= set(got)
    assert not any(s["reason"].startswith("next tier") for s in got.values())


def test_package_lines_join_shared_items_or_known_subcategories_only() -> None:
    members = np.array([[0, -1], [0, 1], [2, -1], [3, -1], [4, -1]])
    subcat = np.array([-1, -1, -1, 7, 7])  # items 0..2 have none; 3 and 4 share subcategory 7
    lines = package_lines(members, subcat)
    assert lines.tolist() == [[True, True, False, False, False],
                              [True, True, False, False, False],
                              [False, False, True, False, False],
                              [False, False, False, True, True],
                              [False, False, False, True, True]]


# -- the tier rule on the real slice --------------------------------------------------------------

def test_on_the_real_slice_a_salad_bar_basic_holder_gets_the_standard(prepared: Path) -> None:
    ds = load_dataset(prepared)
    model = fit_recommender(TrainContext.build(ds.transactions, ds.items, ds.packages),
                            TrainConfig(als_factors=(16,), als_iterations=8, threads=1))
    tx = ds.transactions[ds.transactions["quantity"] > 0]
    owns = tx.groupby("client_id")["item_id"].agg(set)
    holders = [c for c, items in owns.items() if "1005186" in items and "1063207" not in items]
    assert len(holders) >= 5  # salad bar fresh fruit is the most-bought service
    for client in holders[:5]:
        got = offers(model, client)
        assert "salad_bar_basic" not in got, client
        assert got["salad_bar_standard"]["reason"] == "next tier of your current plan Salad Bar Basic: fresh fruit"
        assert got["salad_bar_standard"]["tier"] == 2.0 and got["salad_bar_standard"]["price"] == 4.43


def test_the_evaluation_reads_k_services_past_the_packages(lines_model: Recommender) -> None:
    ctx = TrainContext.build(*two_lines_shop())
    ci = int(ctx.clients.index_of(["h1"])[0])
    queries = TaskQueries(task="service_package", kind="client", metric="hr", clients=np.array([ci]),
                          history=sp.csr_matrix((1, len(ctx.items))), relevant=[np.array([0])])
    answer = lines_model.suggest("h1", "service_package", 5)
    assert sum("items" not in s for s in answer) < 5, "packages take places in the client's list"
    ranked = rank_queries(lines_model, ctx, queries, 5)[0]
    services = set(ctx.items.index_of(["wash2", "wash3", "cut1", "cut2", "cut3"]).tolist())
    assert set(ranked.tolist()) == services, "the five services h1 does not use, none crowded out"
