"""Figures of `bench.serve` as rows, the simulated day's counts, and the printed report.

The day's counts are differences of the service's `/api/v1/admin/cache/stats` (taken
before and after the day) cross-checked with the simulator's ledger (reset at the
day's start): the simulator cannot tell a forming refresh from a fill, the service can,
so `ledger klines - forming refreshes` must equal the service's closed-candle requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLOSED_KINDS = ("fill", "fresh", "bootstrap")
FORMING_TTL_S = 3.0  # CANDLEVAULT_FORMING_TTL_S's default
DIRECT_WEIGHT = 2  # one Binance spot klines request, limit 500
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Row:
    """One figure: ours, the floor's, their ratio, CPU (server / client), the target."""

    figure: str
    ours: str
    floor: str | None = ""
    ratio: str | None = ""
    cpu: str = ""
    target: str = ""
    verdict: str = ""
    note: str = ""


def ratio(ours: float, floor: float) -> str:
    """Ours as a multiple of the floor's."""
    return f"{ours / floor:.2f}x" if floor else "-"


def verdict(met: bool) -> str:
    """'met' or 'MISSED'."""
    return "met" if met else "MISSED"


def print_report(rows: list[Row]) -> None:
    """Print the table, then one line per figure with its target and notes."""
    head = ("figure", "candlevault", "floor", "ours/floor", "CPU srv/cli", "target")
    cells = [head] + [
        (r.figure, r.ours, r.floor or "", r.ratio or "", r.cpu, f"{r.target} {r.verdict}".strip())
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print()
    for n, line in enumerate(cells):
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    print()
    for r in rows:
        extra = f" [{r.note}]" if r.note else ""
        floor = f" vs floor {r.floor} ({r.ratio})" if r.floor else ""
        target = f"; target {r.target}: {r.verdict}" if r.target else ""
        print(f"- {r.figure.strip()}: {r.ours}{floor}{target}{extra}")


def exchange(stats: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    """(kind, symbol) -> [requests, weight], summed over the days."""
    out: dict[tuple[str, str], list[int]] = {}
    for e in stats["exchange_requests"]:
        entry = out.setdefault((e["kind"], e["symbol"]), [0, 0])
        entry[0] += e["requests"]
        entry[1] += e["weight"]
    return out


def _delta(
    after: dict[str, Any], before: dict[str, Any], kinds: tuple[str, ...]
) -> tuple[int, int, dict[str, int]]:
    """Requests and weight of `kinds` between two snapshots, and requests per symbol."""
    a, b = exchange(after), exchange(before)
    requests = weight = 0
    per_symbol: dict[str, int] = {}
    for (kind, symbol), (r, w) in a.items():
        if kind in kinds:
            r0, w0 = b.get((kind, symbol), [0, 0])
            requests += r - r0
            weight += w - w0
            per_symbol[symbol] = per_symbol.get(symbol, 0) + r - r0
    return requests, weight, per_symbol


def _hits(stats: dict[str, Any]) -> dict[str, int]:
    return {layer: int(f["hits"]) for layer, f in stats["layers"].items()}


def day_rows(
    *,
    boots: list[dict[str, Any]],
    booted_s: float,
    after_boot: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    ledger: dict[str, Any],
    day: dict[str, Any],
    sim_ms: int,
    speed: float,
    symbols: int,
    clients: int,
    series: int,
) -> list[Row]:
    """The simulated day's figures (see the module docstring)."""
    sim_days = sim_ms / DAY_MS
    cpu = f"{day['server_cpu_s'] / day['seconds']:.0%} / {day['client_cpu_s'] / day['seconds']:.0%}"
    rows = [
        Row(
            f"sim day: {sim_ms / 3_600_000:.1f} sim h in {day['seconds']:.0f} s (speed {speed:g}), "
            f"{clients} conns x {series} series",
            f"{day['requests']:,} reads, {day['req_per_s']:,.0f}/s",
            cpu=cpu,
            note=f"p50 {day['p50_ms']:.2f} / p99 {day['p99_ms']:.2f} ms",
        ),
        _bootstrap_row(boots, booted_s, after_boot, before),
    ]
    refused = day["requests"] - day["statuses"].get("200", 0)
    rows.append(
        Row(
            "  replies other than 200 during the day",
            f"{refused:,} of {day['requests']:,}",
            target="0",
            verdict=verdict(refused == 0),
            note=f"e.g. {day['errors'][0]}" if day["errors"] else "",
        )
    )
    closed, closed_w, _ = _delta(after, before, CLOSED_KINDS)
    per_day = closed / symbols / sim_days
    rows.append(
        Row(
            "  kline requests for closed candles (fill/fresh/bootstrap)",
            f"{closed:,} ({per_day:.2f} /symbol/day)",
            target="0 (< 1 /symbol/day)",
            verdict=verdict(per_day < 1),
            note=f"{closed_w} weight",
        )
    )
    forming, _, by_symbol = _delta(after, before, ("forming",))
    klines = int(ledger["requests"].get("/api/v3/klines", 0))
    rows.append(
        Row(
            "  cross-check: simulator's kline requests - forming refreshes",
            f"{klines:,} - {forming:,} = {klines - forming:,}",
            target=f"= {closed:,}",
            verdict="agrees" if klines - forming == closed else "DIFFERS",
        )
    )
    fewest = min(by_symbol.values(), default=0)
    most = max(by_symbol.values(), default=0)
    interval = sim_ms / 1000 / most if most else float("inf")
    rows.append(
        Row(
            "  forming refreshes (kind forming), apart",
            f"{forming:,}: one per {interval:.1f} sim s per symbol",
            target=f"<= 1 per symbol per {FORMING_TTL_S:g} s",
            verdict=verdict(interval >= FORMING_TTL_S * 0.95),
            note=f"{fewest:,}-{most:,} per symbol = {most / sim_days:,.0f} per symbol per sim day; "
            f"{most / day['seconds']:.0f} per symbol per wall s",
        )
    )
    hits_a, hits_b = _hits(after), _hits(before)
    d = {k: hits_a[k] - hits_b[k] for k in hits_a}
    served = d["hot"] + d["warm"]
    share = served / (served + d["exchange"]) if served + d["exchange"] else float("nan")
    rows.append(
        Row(
            "  hot+warm share of closed-candle reads (hot_warm_ratio)",
            f"{share:.4%}",
            target=">= 99.9%",
            verdict=verdict(share >= 0.999),
            note=f"hot {d['hot']:,}, warm {d['warm']:,}, exchange {d['exchange']:,} during the "
            f"day; the service's own figure since start: {after['hot_warm_ratio']:.4%}",
        )
    )
    direct, direct_w = day["requests"], DIRECT_WEIGHT * day["requests"]
    ours, ours_w = sum(ledger["requests"].values()), int(ledger["weight"])
    saving = 1 - ours_w / direct_w
    rows.append(
        Row(
            "  exchange weight: clients asking Binance directly vs candlevault",
            f"{direct:,} req / {direct_w:,} w vs {ours:,} req / {ours_w:,} w",
            target=">= 95% saved",
            verdict=f"{saving:.2%} saved: {verdict(saving >= 0.95)}",
            note=f"closed candles alone: {1 - closed_w / direct_w:.4%} saved; "
            f"429s {ledger['status']['429']}, 418s {ledger['status']['418']}",
        )
    )
    return rows


def _bootstrap_row(
    boots: list[dict[str, Any]],
    booted_s: float,
    after_boot: dict[str, Any],
    before: dict[str, Any],
) -> Row:
    requests = sum(j["progress"]["done_requests"] for j in boots)
    weight = sum(j["progress"]["weight"] for j in boots)
    files = sum(j["progress"]["archive_files"] for j in boots)
    candles = sum(j["progress"]["candles"] + j["progress"]["archive_candles"] for j in boots)
    caught, _, _ = _delta(before, after_boot, ("forming", *CLOSED_KINDS))
    return Row(
        "  before the day: bootstrap (both symbols), then 1 s of reads",
        f"{requests} kline req, {files} archive files, {candles:,} candles, {weight} weight",
        note=f"ready in {booted_s:.1f} s; the 1 s of reads that followed made {caught} "
        "exchange requests (not counted in the day)",
    )
