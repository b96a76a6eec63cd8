"""The serving benchmark's report: ratios to the floor, the targets met or missed, and the table
(the loop's figures and targets come from serving_loop)."""
from __future__ import annotations

from typing import Any

from serving_loop import format_loop, loop_targets

P99_TARGET_MS = 25.0


def ratio(row: dict[str, Any], floor: float) -> float:
    """Throughput against the floor measured just before this endpoint (else the run's first)."""
    floor = row.get("floor_rps") or floor
    return row["saturation"]["rps"] / floor if floor else float("nan")


def targets(rows: list[dict[str, Any]], swap: dict[str, Any] | None,
            loop: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    floor = rows[0]["saturation"]["rps"]
    checks = []
    for row in rows:
        x = ratio(row, floor)
        if row["group"] == "cold":
            checks.append((f"{row['endpoint']}: >= 0.5x floor", f"{x:.2f}x", x >= 0.5))
        if row["group"] == "warm":
            checks.append((f"{row['endpoint']}: >= 0.8x floor", f"{x:.2f}x", x >= 0.8))
        if row["endpoint"] == "cart 5 items":
            checks.append((f"{row['endpoint']}: >= 0.5x floor", f"{x:.2f}x", x >= 0.5))
    for row in rows:
        p99 = row["half_rate"]["p99_ms"]
        if row["suggestion"]:
            checks.append((f"{row['endpoint']}: p99 <= {P99_TARGET_MS:.0f} ms at half rate", f"{p99} ms",
                           p99 is not None and p99 <= P99_TARGET_MS))
    if swap is not None:
        checks.append(("model swap: zero failed requests", str(swap["failed_requests"]),
                       swap["failed_requests"] == 0 and swap["swap_seconds"] is not None))
    found = [{"target": t, "measured": m, "result": "PASS" if ok else "MISS"} for t, m, ok in checks]
    if loop is not None:
        found += [{"target": t, "measured": m, "result": r} for t, m, r in loop_targets(loop)]
    return found


def generator_bound(half: dict[str, Any]) -> bool:
    lag, p99 = half["send_lag_p99_ms"], half["p99_ms"]
    return lag is not None and p99 is not None and lag >= 5 and lag >= 0.5 * p99


def _cell(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_table(result: dict[str, Any]) -> str:
    rows = result["endpoints"]
    floor = rows[0]["saturation"]["rps"]
    head = ("endpoint", "rps", "floor rps", "x floor", "p50 ms", "p95 ms", "p99 ms", "at rps", "hit %", "errors",
            "gen lag p99")
    body = []
    for row in rows:
        sat, half = row["saturation"], row["half_rate"]
        hit = half["cache_hit_ratio"]
        p99 = _cell(half["p99_ms"]) + ("*" if generator_bound(half) else "")
        body.append((row["endpoint"], _cell(sat["rps"]), _cell(row.get("floor_rps") or floor),
                     _cell(ratio(row, floor), 2), _cell(half["p50_ms"]),
                     _cell(half["p95_ms"]), p99, _cell(half["rate"], 0),
                     "-" if hit is None else f"{100 * hit:.0f}", f"{sat['errors']}/{half['errors']}",
                     _cell(half["send_lag_p99_ms"])))
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = "  ".join
    out = [line(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=True))),
           line("-" * w for w in widths)]
    out += [line(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in body]
    out.append("rps: wrk saturation (1 thread, {c} connections); floor rps: /healthz measured just before; "
               "latency: open loop at half that rate; "
               "errors: saturation/half-rate non-2xx + socket errors".format(c=result["settings"]["connections"]))
    if any(generator_bound(row["half_rate"]) for row in rows):
        out.append("* the generator fell behind its schedule (send lag p99 >= half the p99): that latency is "
                   "partly the client's, starved of CPU")
    mem = result.get("memory")
    if mem:
        out.append("")
        out.append(f"memory  master RSS {mem['master']['rss_mb']:.0f} MB PSS {mem['master']['pss_mb']:.0f} MB; " +
                   "; ".join(f"worker {w['pid']} RSS {w['rss_mb']:.0f} MB PSS {w['pss_mb']:.0f} MB "
                             f"private {w['private_mb']:.0f} MB" for w in mem["workers"]))
        out.append(f"        total RSS {mem['total_rss_mb']:.0f} MB, PSS {mem['total_pss_mb']:.0f} MB. {mem['verdict']}")
    swap = result.get("swap")
    if swap:
        load = swap["load"]
        took = "did not finish" if swap["swap_seconds"] is None else f"{swap['swap_seconds']:.1f} s"
        out.append(f"swap    v{swap['from_version']} -> v{swap['to_version']}: every worker on it in {took}; "
                   f"{load['sent']} requests at {swap['rate']:.0f}/s, failed {swap['failed_requests']}, "
                   f"p99 {load['p99_ms']} ms, max {load['max_ms']} ms; answers by version {load['versions']}")
    if result.get("loop"):
        out += format_loop(result["loop"])
    out.append("")
    width = max(len(t["target"]) for t in result["targets"]) if result["targets"] else 0
    out += [f"{t['result']:<4}  {t['target']:<{width}}  {t['measured']}" for t in result["targets"]]
    return "\n".join(out)
