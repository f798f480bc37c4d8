#!/usr/bin/env python3
"""Results of scripts/bench: one JSON line per measurement, then the report.

    report.py record RESULTS --round N --scenario NAME --cpu-seconds S
                     (--wrk FILE | --redis-csv FILE)
    report.py render RESULTS --meta FILE --out REPORT [--smoke]

Every ratio is taken within one round (the systems were measured one after
the other, minutes apart at most), and the report gives the median of those
per-round ratios with their spread, so drift on a shared machine cancels out.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

# name: (what runs, system under test, baseline scenario or None)
SCENARIOS = {
    "upstream": ("upstream direct (the ceiling)", "upstream", None),
    "haproxy": ("haproxy -> upstream, no auth", "haproxy", None),
    "nginx": ("nginx -> upstream, no auth", "nginx", "haproxy"),
    "keyless": ("tollgate keyless API -> upstream", "tollgate", "haproxy"),
    "oauth": (
        "tollgate OAuth bearer + rate limit + quota + metrics -> upstream",
        "tollgate",
        "haproxy",
    ),
    "haproxy-fixed": ("haproxy, fixed offered load", "haproxy", None),
    "keyless-fixed": ("tollgate keyless, fixed offered load", "tollgate", "haproxy-fixed"),
    "oauth-fixed": ("tollgate OAuth + limits, fixed offered load", "tollgate", "haproxy-fixed"),
    "issue-redis": ("redis-benchmark SET on the same Redis", "redis-server", None),
    "issue-oidc": ("oidc-provider client_credentials token, stored in Redis", "node", None),
    "issue-oidc-memory": (
        "oidc-provider client_credentials token, memory adapter (keeps 1,000)",
        "node",
        None,
    ),
    "issue": ("tollgate client_credentials token", "tollgate", "issue-redis"),
    "validate-1k": ("tollgate token validation, 1 k live tokens", "tollgate", None),
    "validate-1m": ("tollgate token validation, 1 M live tokens", "tollgate", "validate-1k"),
}
# Further baselines shown in a scenario's "vs baseline" cell.
MORE_BASELINES = {"issue": ["issue-oidc", "issue-oidc-memory"]}


def record(args: argparse.Namespace) -> None:
    if args.wrk:
        wrk = json.loads(Path(args.wrk).read_text())
        seconds = wrk["duration_us"] / 1e6
        requests = wrk["requests"]
        errors = sum(wrk["errors"].values())
        row = {
            "requests": requests,
            "rps": requests / seconds if seconds else 0.0,
            "p50_ms": wrk["p50_us"] / 1000,
            "p99_ms": wrk["p99_us"] / 1000,
            "errors": errors,
            "non_2xx": wrk["errors"]["status"],
        }
    else:
        # redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms",
        # "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        rows = list(csv.reader(Path(args.redis_csv).read_text().splitlines()))
        data = [r for r in rows if r and r[0] != "test"]
        if not data:
            sys.exit("report.py: no result in the redis-benchmark output")
        header = rows[0]
        values = dict(zip(header, data[0]))
        row = {
            "requests": args.requests,
            "rps": float(values["rps"]),
            "p50_ms": float(values["p50_latency_ms"]),
            "p99_ms": float(values["p99_latency_ms"]),
            "errors": 0,
            "non_2xx": 0,
        }
    row["cpu_per_1k"] = (
        args.cpu_seconds / row["requests"] * 1000 if row["requests"] else None
    )
    row.update(round=args.round, scenario=args.scenario)
    with open(args.results, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def spread(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def render(args: argparse.Namespace) -> None:
    meta = json.loads(Path(args.meta).read_text())
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line]
    by = {}
    for row in rows:
        by.setdefault(row["scenario"], {})[row["round"]] = row

    def ratios(name: str, base: str, field: str) -> list[float]:
        out = []
        for rnd, row in by.get(name, {}).items():
            other = by.get(base, {}).get(rnd)
            if other and other[field]:
                out.append(row[field] / other[field])
        return out

    def diffs(name: str, base: str, field: str) -> list[float]:
        out = []
        for rnd, row in by.get(name, {}).items():
            other = by.get(base, {}).get(rnd)
            if other:
                out.append(row[field] - other[field])
        return out

    lines = []
    title = "tollgate benchmark" + (" (smoke run: targets not enforced)" if args.smoke else "")
    lines += [f"# {title}", ""]
    lines += [
        f"- date: {meta['date']}",
        f"- machine: {meta['cores']} cores ({meta['cpu']}), {meta['kernel']}",
        f"- build: tollgate `{meta['profile']}` profile",
        f"- rounds: {meta['rounds']}, interleaved (round 1 runs every scenario once, then round 2, ...); "
        f"each measurement {meta['duration']} s after a {meta['warmup']} s warm-up per scenario",
        f"- load: wrk, 1 thread, {meta['connections']} connections, keep-alive; "
        f"fixed-load rows: {meta['fixed_connections']} connections each pausing "
        f"{meta['fixed_delay_ms']} ms between requests (about {meta['fixed_rate']} req/s offered)",
        f"- pinning: {meta['pinning']}",
        f"- upstream: {meta['upstream']}",
        f"- versions: {meta['versions']}",
        "",
        "Each cell: median of the rounds, (min–max) across rounds. CPU is user+system "
        "time of the system under test's process only, per 1,000 requests.",
        "",
        "| scenario | system under test | req/s | p50 ms | p99 ms | CPU s / 1k req | errors | vs baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (label, sut, base) in SCENARIOS.items():
        runs = list(by.get(name, {}).values())
        if not runs:
            why = meta.get("skipped", {}).get(name)
            if why:
                lines.append(f"| {label} | {sut} | skipped: {why} | | | | | |")
            continue
        vs = ""
        if base:
            cells = []
            for other in [base] + MORE_BASELINES.get(name, []):
                r = ratios(name, other, "rps")
                if r:
                    cells.append(f"{spread(r, '{:.2f}')}x {other} req/s")
            vs = "; ".join(cells)
            if name.endswith("-fixed"):
                d = diffs(name, base, "p99_ms")
                if d:
                    vs = f"p99 {spread(d, '{:+.2f}')} ms vs {base}"
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                label,
                sut,
                spread([r["rps"] for r in runs], "{:,.0f}"),
                spread([r["p50_ms"] for r in runs], "{:.2f}"),
                spread([r["p99_ms"] for r in runs], "{:.2f}"),
                spread([r["cpu_per_1k"] for r in runs], "{:.3f}"),
                sum(r["errors"] for r in runs),
                vs,
            )
        )

    lines += ["", "## Memory of tollgate", ""]
    lines += [
        f"- idle, after start and setup: {meta['idle_rss_mb']:.1f} MB RSS",
        f"- peak over every tollgate scenario (VmHWM): {meta['peak_rss_mb']:.1f} MB",
        f"- the node in front of 1 M tokens, peak (VmHWM): {meta['peak_rss_1m_mb']:.1f} MB",
    ]

    targets = []

    def target(text: str, values: list[float], ok, shown: str) -> None:
        if not values:
            targets.append((text, "not measured", None))
            return
        med = statistics.median(values)
        targets.append((text, shown.format(med), ok(med)))

    target("keyless ≥ 0.9x haproxy req/s", ratios("keyless", "haproxy", "rps"),
           lambda v: v >= 0.9, "{:.2f}x")
    target("OAuth + limits + quota + metrics ≥ 0.7x haproxy req/s",
           ratios("oauth", "haproxy", "rps"), lambda v: v >= 0.7, "{:.2f}x")
    target("OAuth p99 ≤ haproxy p99 + 1 ms at the same fixed offered load",
           diffs("oauth-fixed", "haproxy-fixed", "p99_ms"), lambda v: v <= 1.0, "{:+.2f} ms")
    target("issuance ≥ 0.3x redis-benchmark SET rate",
           ratios("issue", "issue-redis", "rps"), lambda v: v >= 0.3, "{:.2f}x")
    target("issuance ≥ 5x oidc-provider (tokens in Redis)",
           ratios("issue", "issue-oidc", "rps"), lambda v: v >= 5, "{:.1f}x")
    target("1 M vs 1 k live tokens: req/s within 10 %",
           ratios("validate-1m", "validate-1k", "rps"), lambda v: v >= 0.9, "{:.2f}x")
    target("idle RSS < 30 MB", [meta["idle_rss_mb"]], lambda v: v < 30, "{:.1f} MB")
    target("loaded RSS < 100 MB", [max(meta["peak_rss_mb"], meta["peak_rss_1m_mb"])],
           lambda v: v < 100, "{:.1f} MB")

    lines += ["", "## Targets", "", "| target | measured (median of per-round values) | |", "| --- | --- | --- |"]
    for text, shown, ok in targets:
        mark = "n/a" if ok is None else ("met" if ok else "missed")
        if args.smoke and ok is not None:
            mark += " (smoke, not enforced)"
        lines.append(f"| {text} | {shown} | {mark} |")
    for note in meta.get("notes", []):
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("results")
    rec.add_argument("--round", type=int, required=True)
    rec.add_argument("--scenario", required=True, choices=SCENARIOS)
    rec.add_argument("--cpu-seconds", type=float, required=True)
    rec.add_argument("--requests", type=int, default=0, help="requests sent (redis-benchmark)")
    src = rec.add_mutually_exclusive_group(required=True)
    src.add_argument("--wrk")
    src.add_argument("--redis-csv")
    ren = sub.add_parser("render")
    ren.add_argument("results")
    ren.add_argument("--meta", required=True)
    ren.add_argument("--out", required=True)
    ren.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    record(args) if args.command == "record" else render(args)


if __name__ == "__main__":
    main()
