"""`python -m features prepare|validate`: build the canonical data folder, or check one."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from features.loader import DataError, load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the data contract files from a known source")
    prep.add_argument("--source", choices=["completejourney"], required=True)
    prep.add_argument("--out", required=True, help="folder to write transactions/items/clients/packages.parquet")
    prep.add_argument("--households", type=int, default=None, help="a random real slice of N households")
    prep.add_argument("--seed", type=int, default=0)
    val = sub.add_parser("validate", help="load a data folder and report rejected rows and its fingerprint")
    val.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "prepare":
        from features.completejourney import prepare

        if args.households is not None and args.households <= 0:
            parser.error("--households must be positive")
        counts = prepare(args.out, args.households, args.seed)
        print(json.dumps({"out": args.out, "rows": counts}))
        return 0
    try:
        dataset = load_dataset(args.data)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dataset.report.format())
    print(json.dumps({"fingerprint": dataset.fingerprint, "report": dataset.report.as_dict()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
