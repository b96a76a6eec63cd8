"""Training fed broken files, or stopped part way: clear errors, and a registry left alone.

The corpus below is written at test time (the single-line file is 5 MB in `make test`, 100 MB
in `make reliability`). Each folder goes through `python -m features validate` and, for a
selection (all of them with RELIABILITY_FULL=1), `python -m training train`, as subprocesses.
Each must end in a clear `error:` naming the file (exit 2) or in counted rejections, and never
in a traceback. Rows that are merely bad are appended to a real 25-household slice, so the rest
still trains.

Then the trainer is stopped part way against the session's `mlflow server`: SIGINT while it
evaluates, SIGKILL while it logs the model (its MLflow run open, the version not yet
registered), and fed a corrupt file: no version is registered and @champion does not move. Those
runs use the 25-household slice, so each takes seconds.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from support.processes import ROOT
from support.reliability_harness import FULL, Figures, scaled

HEADER = "client_id,item_id,timestamp,quantity,price\n"
EVENT_ROW = "{c},{i},2017-06-0{d}T10:00:00Z,1,2.5\n"
SINGLE_LINE_BYTES = int(scaled(5_000_000, 100_000_000))
MAX_CLEAR_OUTPUT = 20_000  # an error message is read by a person


@dataclass(frozen=True)
class Case:
    """A broken data folder and what must come of it: 'stop' (exit 2, error: naming a file),
    'count' (rows rejected and counted by these reasons, the rest used), 'stop-train' (validate
    accepts it, train stops with a clear error) or 'either' (train succeeds or stops clearly)."""

    name: str
    expect: str
    reasons: tuple[str, ...] = ()
    train_in_short_run: bool = False
    files: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


def _wrong_parquet(path: Path) -> None:
    pd.DataFrame({"client_id": [1.5, None, 3.0], "item_id": [[1], [2], [3]], "timestamp": [True, False, True]}
                 ).to_parquet(path)


def _single_line(path: Path) -> None:
    with open(path, "wb") as handle:
        for _ in range(SINGLE_LINE_BYTES // 1_000_000):
            handle.write(b"a" * 1_000_000)


def _huge_field(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.write((HEADER + "1394,").encode())
        for _ in range(SINGLE_LINE_BYTES // 1_000_000):
            handle.write(b"x" * 1_000_000)
        handle.write(b",2017-06-01T10:00:00Z,1,1\n")


ROWS_BAD_TYPES = ("1394,854852,yesterday,1,2\n1394,854852,2017-06-01,two,2\n1394,854852,2017-06-01,1,cheap\n"
                  ",854852,2017-06-01,1,1\n1394,,2017-06-01,1,1\n")
ROWS_DATES = ("1394,854852,2017-06-01T10:00:00+02:00,1,1\n1394,873887,2017-06-01 10:00:00,1,1\n"
              "1394,881249,1496311200,1,1\n1394,915493,01/06/2017,1,1\n1394,927382,\"June 1, 2017\",1,1\n"
              "1394,927382,2017-13-45,1,1\n1394,946839,20170601,1,1\n")
#: Five clients who each bought every one of seven items: valid rows, nothing left to suggest.
ROWS_EVERYONE_BOUGHT_EVERYTHING = "".join(f"c{n % 5},i{n % 7},2017-0{1 + n % 9}-1{n % 9}T10:00:00Z,{1 + n % 3},2.5\n"
                                          for n in range(60))
ROWS_QUANTITIES = ("1394,854852,2017-06-01,-3,1\n1394,854852,2017-06-02,0,1\n1394,854852,2017-06-03,10000000,1\n"
                   "1394,854852,2017-06-04,1e300,1\n1394,854852,2017-06-05,inf,1\n1394,854852,2017-06-06,nan,1\n"
                   "1394,854852,2017-06-07,1,-5\n")
ROWS_IDS = "1394\x00,854852,2017-06-01,1,1\n1394,8548\t52,2017-06-01,1,1\n" + "c" * 200 + ",854852,2017-06-01,1,1\n"

CASES = (
    Case("empty_file", "stop", train_in_short_run=True, files={"transactions.csv": b""}),
    Case("header_only", "stop", files={"transactions.csv": HEADER}),
    Case("missing_columns", "stop", files={"transactions.csv": "client_id,timestamp\n1394,2017-06-01\n"}),
    Case("mixed_encodings", "stop",
         files={"transactions.csv": (HEADER + "1394,854852,2017-06-01,1,1\n").encode() + "1394,café,2017-06-01,1,1\n".encode("latin-1")}),
    Case("single_line_no_newline", "stop", files={"transactions.csv": _single_line}),
    Case("single_huge_field", "stop", files={"transactions.csv": _huge_field}),
    Case("corrupt_parquet", "stop", files={"transactions.parquet": b"PAR1" + bytes(range(256)) * 40}),
    Case("binary_garbage", "stop", files={"transactions.csv": bytes(range(256)) * 100}),
    Case("unbalanced_quotes", "stop", files={"transactions.csv": HEADER + '1394,"854852,2017-06-01,1,1\n' * 3}),
    Case("semicolon_separated", "stop", files={"transactions.csv": HEADER.replace(",", ";") + "1394;854852;2017-06-01;1;1\n"}),
    Case("no_transactions_file", "stop", files={"items.csv": "item_id\n854852\n"}),
    Case("wrong_types_in_parquet", "stop", files={"transactions.parquet": _wrong_parquet}),
    Case("history_shorter_than_test_window", "stop-train", train_in_short_run=False,
         files={"transactions.csv": HEADER + "1394,854852,2017-06-01,1,1\n1395,873887,2017-06-01,1,1\n"}),
    Case("everyone_bought_everything", "either",
         files={"transactions.csv": HEADER + ROWS_EVERYONE_BOUGHT_EVERYTHING}),
    Case("wrong_types", "count", ("bad_timestamp", "bad_quantity", "bad_price", "missing_or_invalid_id"),
         train_in_short_run=True, files={"extra": ROWS_BAD_TYPES}),
    Case("dates_in_several_formats", "count", ("bad_timestamp",), files={"extra": ROWS_DATES}),
    Case("negative_and_huge_quantities", "count", ("quantity_out_of_range", "bad_quantity", "bad_price"),
         files={"extra": ROWS_QUANTITIES}),
    Case("duplicate_rows", "count", ("duplicate",), files={"duplicate": True}),
    Case("control_characters_and_long_ids", "count", ("missing_or_invalid_id",), files={"extra": ROWS_IDS}),
    Case("unknown_items", "count", ("unknown_item",), files={"extra": "1394,no-such-item,2017-06-01,1,1\n",
                                                             "items": True}),
)


@dataclass
class Run:
    command: str
    returncode: int
    output: str
    seconds: float


def _write_case(root: Path, case: Case, base: pd.DataFrame, items: pd.DataFrame) -> Path:
    folder = root / case.name
    folder.mkdir(parents=True)
    if case.expect == "count":
        text = base.to_csv(index=False)
        if case.files.get("duplicate"):
            text += base.head(500).to_csv(index=False, header=False)
        (folder / "transactions.csv").write_text(text + case.files.get("extra", ""), encoding="utf-8")
        if case.files.get("items"):
            items.to_csv(folder / "items.csv", index=False)
        return folder
    for name, content in case.files.items():
        path = folder / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> Run:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, timeout=timeout)
    output = (done.stdout + done.stderr).decode("utf-8", errors="replace")
    return Run(" ".join(args[:2]), done.returncode, output, time.monotonic() - started)


def _trains(case: Case) -> bool:
    return FULL or case.train_in_short_run


def _small_slice(slice_dir: Path) -> pd.DataFrame:
    """25 real households of the slice: enough to train, quick to train on."""
    tx = pd.read_parquet(slice_dir / "transactions.parquet")
    clients = tx["client_id"].drop_duplicates().sample(25, random_state=0)
    return tx[tx["client_id"].isin(clients)][["client_id", "item_id", "timestamp", "quantity", "price"]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, slice_dir: Path, mlflow_server: str) -> dict[str, dict[str, Run]]:
    """Every case through validate (and train where chosen), two at a time."""
    root = tmp_path_factory.mktemp("broken-corpus")
    base = _small_slice(slice_dir)
    items = pd.read_parquet(slice_dir / "items.parquet")
    folders = {case.name: _write_case(root, case, base, items) for case in CASES}
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_EXPERIMENT": f"corpus-{uuid.uuid4().hex[:6]}",
           "ERASURES_FILE": str(root / "no-erasures.jsonl"), "TRAIN_THREADS": "1", "REDIS_URL": "",
           "EVENTS_DB_URL": f"sqlite:///{root / 'no-events.db'}"}
    jobs: list[tuple[str, str, Callable[[], Run]]] = []
    for case in CASES:
        folder = str(folders[case.name])
        jobs.append((case.name, "validate", lambda f=folder: _run(["features", "validate", "--data", f], env)))
        if _trains(case):
            name = f"corpus-{case.name}-{uuid.uuid4().hex[:6]}"
            jobs.append((case.name, "train", lambda f=folder, n=name: _run(
                ["training", "train", "--data", f, "--no-tune", "--max-baskets", "200", "--model-name", n], env)))
    results: dict[str, dict[str, Run]] = {case.name: {} for case in CASES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(name, command, pool.submit(job)) for name, command, job in jobs]
        for name, command, future in futures:
            results[name][command] = future.result()
    for big in ("single_line_no_newline", "single_huge_field"):  # pytest keeps three runs of tmp
        (folders[big] / "transactions.csv").unlink()
    return results


#: What the loader or trainer gets wrong today, as (case, what) -> why: such a case is an xfail
#: rather than a failure. Empty: the three found (a 100 MB error message, a traceback when every
#: client bought everything, 20170601 read as epoch seconds) are fixed and now fail loudly.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_broken_training_input_gives_a_clear_error_or_counted_rejection(
        case: Case, corpus: dict[str, dict[str, Run]], figures: Figures) -> None:
    runs = corpus[case.name]
    for command, run in runs.items():
        first_line = next((line for line in run.output.splitlines() if line.startswith("error:")), "")
        first_line = re.sub(r"/\S*/broken-corpus\d*/", "", first_line)
        if "Traceback" in run.output:
            first_line = "TRACEBACK: " + run.output.strip().splitlines()[-1]
        figures.add(f"{command}: exit {run.returncode} ({run.seconds:.1f} s)", first_line or _rejections(run.output),
                    "no traceback")
    problems, known = [], []

    def problem(what: str, message: str) -> None:
        (known if (case.name, what) in KNOWN else problems).append(KNOWN.get((case.name, what), message))

    for command, run in runs.items():
        if "Traceback" in run.output:
            problem("traceback", f"{command}: traceback\n{run.output[-1500:]}")
            continue
        stops = case.expect == "stop" or (case.expect == "stop-train" and command == "train")
        if case.expect == "either" and run.returncode != 0:
            stops = True
        if stops:
            if run.returncode not in (2, 3) or not re.search(r"^error: ", run.output, re.M):
                problem("unclear", f"{command}: exit {run.returncode} without a clear error: {run.output[-600:]}")
            elif len(run.output) > MAX_CLEAR_OUTPUT:
                problem("size", f"{command}: the error is {len(run.output)} characters long")
        else:
            missing = [reason for reason in case.reasons if not re.search(rf"\b{reason}=\d+", run.output)]
            if run.returncode != 0 or missing:
                problem("uncounted", f"{command}: exit {run.returncode}, reasons not counted {missing}: "
                                     f"{run.output[-800:]}")
            if '"first": "1970' in run.output:
                problem("compact-date", f"{command}: a row was read as 1970")
    assert not problems, "\n".join(problems)
    if known:
        pytest.xfail("; ".join(sorted(set(known))))


def _rejections(output: str) -> str:
    match = re.search(r"transactions: read \d+, accepted \d+, rejected: [^\n;]*", output)
    return match.group(0) if match else output.strip().splitlines()[-1] if output.strip() else ""


# ---- interrupted and corrupt training leave the registry alone ----

@dataclass
class Trained:
    name: str
    version: str
    env: dict[str, str]
    data: Path
    mlflow: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, slice_dir: Path, mlflow_server: str) -> Trained:
    """A real champion, trained with `python -m training train` on 25 real households."""
    root = tmp_path_factory.mktemp("interrupted-training")
    data = root / "small-slice"
    data.mkdir()
    _small_slice(slice_dir).to_parquet(data / "transactions.parquet")
    name = f"crm-interrupted-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "MODEL_NAME": name, "TRAIN_THREADS": "1",
           "MLFLOW_EXPERIMENT": name, "ERASURES_FILE": str(root / "none.jsonl"), "REDIS_URL": "",
           "EVENTS_DB_URL": f"sqlite:///{root / 'no-events.db'}"}
    run = _run(["training", "train", "--data", str(data), "--no-tune", "--promote", "--max-baskets", "200"], env)
    assert run.returncode == 0, run.output[-2000:]
    version = MlflowClient(mlflow_server).get_model_version_by_alias(name, "champion").version
    return Trained(name, str(version), env, data, mlflow_server)


def _registry_state(trained: Trained) -> tuple[list[str], str]:
    client = MlflowClient(trained.mlflow)
    versions = sorted(v.version for v in client.search_model_versions(f"name='{trained.name}'"))
    return versions, str(client.get_model_version_by_alias(trained.name, "champion").version)


def _interrupt(trained: Trained, when: Callable[[str], bool], sig: int, timeout: float = 300) -> tuple[int, str, float]:
    """Start the trainer, send `sig` once `when(output so far)` holds; (exit code, output, seconds in)."""
    proc = subprocess.Popen([sys.executable, "-m", "training", "train", "--data", str(trained.data), "--no-tune",
                             "--promote", "--max-baskets", "200"], cwd=ROOT, env=trained.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(line.decode(errors="replace") for line in proc.stdout),
                              daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while not when("".join(output)):
            if proc.poll() is not None or time.monotonic() - started > timeout:
                raise AssertionError("the trainer ended before the moment to interrupt it:\n" + "".join(output)[-2000:])
            time.sleep(0.05)
        sent_at = time.monotonic() - started
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        proc.stdout.close()  # the reader has seen the end of it
    return code, "".join(output), sent_at


def _logging_the_model(trained: Trained) -> Callable[[str], bool]:
    """True once the trainer has opened its MLflow run: it is logging, about to register."""
    client = MlflowClient(trained.mlflow)

    def check(_: str) -> bool:
        experiment = client.get_experiment_by_name(trained.name)
        if experiment is None:
            return False
        return bool(client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"))

    return check


def test_interrupted_or_corrupt_training_leaves_registry_and_champion_alone(
        trained: Trained, tmp_path: Path, figures: Figures) -> None:
    before = _registry_state(trained)
    code, output, at = _interrupt(trained, lambda out: "training.evaluate: split at" in out, signal.SIGINT)
    after_sigint = _registry_state(trained)
    figures.add("SIGINT while evaluating: exit / registry", f"{code} after {at:.1f} s / "
                f"{'unchanged' if after_sigint == before else after_sigint}", "unchanged")
    kill_code, _, kill_at = _interrupt(trained, _logging_the_model(trained), signal.SIGKILL)
    after_sigkill = _registry_state(trained)
    figures.add("SIGKILL while logging the model: registry", f"after {kill_at:.1f} s / "
                f"{'unchanged' if after_sigkill == before else after_sigkill}", "unchanged")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for table in trained.data.glob("*.parquet"):
        (corrupt / table.name).write_bytes(table.read_bytes())
    raw = (corrupt / "transactions.parquet").read_bytes()
    (corrupt / "transactions.parquet").write_bytes(raw[: len(raw) // 2] + b"\x00" * 64 + raw[-1000:])
    run = _run(["training", "train", "--data", str(corrupt), "--no-tune", "--promote"], trained.env)
    after_corrupt = _registry_state(trained)
    figures.add("corrupt transactions.parquet: exit / registry", f"{run.returncode} / "
                f"{'unchanged' if after_corrupt == before else after_corrupt}", "2 / unchanged")

    assert code != 0 and after_sigint == before, output[-1500:]
    assert kill_code == -signal.SIGKILL and after_sigkill == before
    assert run.returncode == 2 and "error:" in run.output and "Traceback" not in run.output, run.output[-1500:]
    assert after_corrupt == before
