"""`make audit`: train the full model, serve it as in production, read its answers, count what breaks.

    python tests/audit/run.py                         # data/full (prepared if missing), fresh model
    python tests/audit/run.py --reuse-model           # audit the champion already in var/audit
    python tests/audit/run.py --data data/sample --clients 50 --carts 30   # a quick look

Steps: prepare data/full from Complete Journey when it is missing; train with
`python -m training train --promote-if-none` into a store of its own (var/audit/mlflow.db, so the
user's var/mlflow.db is never touched); start redis-server and gunicorn as the benchmark does
(tests/bench/serving_stack.py); ask the HTTP API for `kind=all` suggestions of sampled clients and
for the completion of real carts; check every answer (tests/audit/checks.py) against facts read
off the data (tests/audit/facts.py); write docs/audit.md, and every answer and finding under
var/audit/ for whoever fixes them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "bench"), str(ROOT)]

import requests  # noqa: E402
import serving_stack  # noqa: E402  (tests/bench: the processes, started as the benchmark starts them)

from audit.checks import RULES, Audited, audit_cart_answer, audit_client_answer, tally  # noqa: E402
from audit.facts import build_facts, sample_carts, sample_clients  # noqa: E402
from audit.report import Quotable, Run, page  # noqa: E402

MODEL_NAME = "crm-audit"
#: A bundle reading more than this many times chance is not believable (the issue's 2161x).
MAX_LIFT = 100.0


def prepare(data: Path) -> None:
    """The full Complete Journey data, canonical, when the folder has none."""
    if (data / "transactions.parquet").exists() or (data / "transactions.csv").exists():
        return
    print(f"preparing {data} from Complete Journey (python -m features prepare) ...", flush=True)
    subprocess.run([sys.executable, "-m", "features", "prepare", "--source", "completejourney", "--out", str(data)],
                   check=True, cwd=ROOT, timeout=3600)


def train(data: Path, work: Path, reuse: bool) -> tuple[str, float | None]:
    """The tracking URI of var/audit's own store, holding a freshly trained @champion (or, with
    `reuse`, the one already there), and the seconds training took (None when reused). A fresh store each time: --promote-if-none then always
    promotes this run's model, so the audit never serves an older one the gate preferred."""
    store = work / "mlflow.db"
    uri = f"sqlite:///{store}"
    if reuse and store.exists():
        print(f"reusing the champion in {store}", flush=True)
        return uri, None
    store.unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ARTIFACTS_DESTINATION": str(work / "mlartifacts"),
           "MODEL_NAME": MODEL_NAME, "REDIS_URL": "", "ERASURES_FILE": str(work / "no-erasures.jsonl"),
           "EVENTS_DB_URL": f"sqlite:///{work / 'no-events.db'}"}
    command = [sys.executable, "-m", "training", "train", "--data", str(data), "--model-name", MODEL_NAME,
               "--promote-if-none", "--out", str(work / "training")]
    print(f"training: {' '.join(command[1:])} (log {work / 'train.log'}) ...", flush=True)
    started = time.monotonic()
    proc = serving_stack.start_logged(command, work / "train.log", env=env, cwd=ROOT)
    try:
        code = proc.wait(timeout=3 * 3600)
    finally:
        serving_stack.stop_group(proc)
    if code != 0:
        tail = (work / "train.log").read_text(errors="replace").splitlines()[-20:]
        raise SystemExit(f"training failed ({code}):\n" + "\n".join(tail))
    seconds = time.monotonic() - started
    print(f"trained in {seconds:.0f}s", flush=True)
    return uri, seconds


def shown(path: Path) -> str:
    """A path as the page prints it: from the repository's root when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def code_version() -> str:
    """The commit audited, and whether the tree had changes on top of it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def ask(session: requests.Session, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    response = session.request(method, url, timeout=120, **kwargs)
    if response.status_code != 200:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def audit(base: str, facts, clients: list[str], carts, limit: int, answers_log: Path) -> tuple[dict[str, Audited], list[Quotable], int]:
    """Ask, check and remember every answer; (audits by answer type, quotable suggestions, cold starts)."""
    by_answer = {"client answers": Audited(), "cart answers": Audited()}
    quotable: list[Quotable] = []
    cold = 0
    with requests.Session() as session, open(answers_log, "w", encoding="utf-8") as log:
        for client in clients:
            answer = ask(session, "GET", f"{base}/v1/clients/{client}/suggestions",
                         params={"kind": "all", "limit": limit})
            log.write(json.dumps({"request": {"client_id": client, "kind": "all", "limit": limit},
                                  "answer": answer}) + "\n")
            cold += bool(answer.get("cold_start"))
            by_answer["client answers"].add(audit_client_answer(answer, facts))
            quotable += [Quotable("client", f"client {client}", f"client {client} (kind=all)", section, entry)
                         for section, entries in answer["suggestions"].items() for entry in entries]
        for k, cart in enumerate(carts, start=1):
            body: dict[str, Any] = {"items": list(cart.items), "limit": limit}
            if cart.client_id is not None:
                body["client_id"] = cart.client_id
            answer = ask(session, "POST", f"{base}/v1/cart/suggestions", json=body)
            log.write(json.dumps({"request": body, "order_id": cart.order_id, "answer": answer}) + "\n")
            source = f"cart {k}"
            by_answer["cart answers"].add(audit_cart_answer(answer, source, facts, cart.items))
            who = "client " + cart.client_id if cart.client_id else "an anonymous client"
            asked = (f"cart {k} of {who}: " + "; ".join(facts.names.get(i, i) for i in cart.items)
                     + f" (basket {cart.order_id})")
            quotable += [Quotable("cart", source, asked, section, entry)
                         for section in ("complete", "upsell", "bundles") for entry in answer.get(section) or []]
    return by_answer, quotable, cold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "full", help="data folder (default data/full)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "audit",
                        help="the audit's own store, logs and answers (default var/audit)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "audit.md", help="the page (default docs/audit.md)")
    parser.add_argument("--clients", type=int, default=300, help="clients asked for kind=all (default 300)")
    parser.add_argument("--carts", type=int, default=200, help="real carts sent (default 200)")
    parser.add_argument("--limit", type=int, default=10, help="suggestions per list (default 10)")
    parser.add_argument("--test-days", type=float, default=60, help="carts come from the last days (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and quotes (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--reuse-model", action="store_true", help="serve the champion already in --work")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is found")
    args = parser.parse_args(argv)
    data, work = args.data.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    command = "make audit" if os.environ.get("MAKELEVEL") else " ".join(["python tests/audit/run.py", *(argv or sys.argv[1:])])

    started = time.monotonic()
    prepare(data)
    uri, training_seconds = train(data, work, args.reuse_model)

    from features.loader import load_dataset
    from training.config import TrainConfig

    config = TrainConfig()  # the trainer's own settings: the same declared and allowed non-merchandise
    dataset = load_dataset(data, non_merchandise=config.non_merchandise, merchandise_allow=config.merchandise_allow)
    clients = sample_clients(dataset, args.clients, args.seed)
    carts = sample_carts(dataset, args.carts, args.seed, args.test_days)
    facts = build_facts(dataset, sorted(set(clients) | {c.client_id for c in carts if c.client_id}), config,
                        min_bundle_baskets=int(getattr(config, "bundle_min_baskets", 5)), max_lift=MAX_LIFT)

    stack = serving_stack.Stack(work, uri, MODEL_NAME, args.workers)
    print(f"starting redis-server and gunicorn ({args.workers} workers) ...", flush=True)
    try:
        stack.start()
        ready = requests.get(stack.base + "/readyz", timeout=10).json()
        print(f"serving {MODEL_NAME} version {ready['model']['version']}; asking {len(clients)} clients and "
              f"{len(carts)} carts ...", flush=True)
        asking = time.monotonic()
        by_answer, quotable, cold = audit(stack.base, facts, clients, carts, args.limit, work / "answers.jsonl")
        asking = time.monotonic() - asking
    finally:
        stack.stop()
    took = (f"{(time.monotonic() - started) / 60:.1f} min in all"
            + (f", training {training_seconds:.0f} s" if training_seconds is not None else "")
            + f", asking {len(clients) + len(carts)} requests {asking:.0f} s")

    audited = Audited()
    for part in by_answer.values():
        audited.add(part)
    lines, n_clients = len(dataset.transactions), dataset.transactions["client_id"].nunique()
    anonymous = sum(c.client_id is None for c in carts)
    run = Run(
        command=command, date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        data=(f"`{shown(data)}` ({lines:,} lines, {n_clients:,} clients, {len(facts.names):,} items, "
              f"{len(set(facts.groups.values())):,} product groups, {len(facts.non_merchandise):,} items "
              "not merchandise by the facts)"),
        code=code_version(), model=MODEL_NAME,
        version=(f"{ready['model']['version']} (@{ready['model']['alias']}, "
                 + ("already in" if args.reuse_model else "trained by this run into")
                 + f" `{shown(work)}`)"),
        asked=[f"{len(clients)} clients drawn (seed {args.seed}) from the {n_clients:,} the model knows: "
               f"`GET /v1/clients/{{id}}/suggestions?kind=all&limit={args.limit}` ({cold} answered as cold start)",
               f"{len(carts)} carts: real baskets of the last {args.test_days:g} days (seed {args.seed}), each cut "
               f"to its first 2-5 items; {anonymous} anonymous, {len(carts) - anonymous} with their client: "
               f"`POST /v1/cart/suggestions` (limit {args.limit})"],
        took=took, audited=audited, by_answer=by_answer, quotable=quotable)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(run, facts, args.seed), encoding="utf-8")
    findings = [vars(f) for f in audited.findings]
    (work / "findings.json").write_text(json.dumps({"counts": tally(audited), "findings": findings}, indent=1) + "\n")

    print(f"\n{audited.suggestions:,} suggestions audited")
    for rule, row in tally(audited).items():
        print(f"  {RULES[rule]:<54} {row['findings']:>6,}  ({row['per_1000']:g} per 1,000)")
    print(f"took {took}; wrote {args.out}; answers {work / 'answers.jsonl'}, findings {work / 'findings.json'}")
    return 1 if args.strict and audited.findings else 0


if __name__ == "__main__":
    sys.exit(main())
