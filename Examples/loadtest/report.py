#!/usr/bin/env python3
"""Turns the load test's JSON results into docs/load-test.md and the docs/load-test-*.svg plots.

Python standard library only. Usage: report.py RESULTS_DIR DOCS_DIR
RESULTS_DIR holds meta.json, sweep-<mode>.jsonl and spike-<mode>.json as run.sh writes them.
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

from loadgen import recovery_time

COLOURS = {"shedding": "#1f77b4", "unbounded": "#d62728", "adaptive": "#2ca02c", "self-sizing": "#9467bd"}
DESCRIPTIONS = {
    "shedding": "`ORDERS_ADMISSION=fixed`, limit {limit}, queue {queue}, queue timeout {queue_timeout_ms} ms: what does "
                "not fit is answered 503 with `Retry-After` at once.",
    "unbounded": "`ORDERS_ADMISSION=unbounded`: no limiter, every request waits for a connection (up to the pool's "
                 "{acquire_timeout_s} s acquire timeout).",
    "adaptive": "`ORDERS_ADMISSION=adaptive`: an `AdaptiveConcurrencyLimiter` (latency gradient) starting at {limit}, "
                "between 1 and four times the pool, queue {queue}, queue timeout {queue_timeout_ms} ms.",
    "self-sizing": "`ORDERS_ADMISSION=self-sizing`: no limiter; the pool's `selfSizing` moves its effective maximum "
                   "within 1…{pool_size}, and its waiter queue is bounded (`maximumWaiters` {queue}, acquire timeout "
                   "{queue_timeout_ms} ms), so it sheds with 503 too.",
}
DASHES = {"p50": "6,4", "p99": ""}


def load(directory):
    with open(os.path.join(directory, "meta.json")) as handle:
        meta = json.load(handle)
    sweeps, spikes = {}, {}
    for mode in meta["modes"]:
        with open(os.path.join(directory, "sweep-%s.jsonl" % mode)) as handle:
            sweeps[mode] = [json.loads(line) for line in handle if line.strip()]
        path = os.path.join(directory, "spike-%s.json" % mode)
        if os.path.exists(path):
            with open(path) as handle:
                spikes[mode] = recompute_recovery(json.load(handle))
    return meta, sweeps, spikes


def recompute_recovery(spike):
    """Recovery times from the spike's timeline and scrapes, with the definition of this version of loadgen.py."""
    hold = spike.get("hold_s", 3.0)
    spike_end = spike["before"] + spike["during"]
    limit = spike["baseline_p99_ms"] * spike["tolerance"] if spike["baseline_p99_ms"] else None
    p99 = [(point["t"], point["p99_ms"]) for point in spike["timeline"]]
    waiters = [(sample["t"], sample.get("waiters", 0)) for sample in spike["scrapes"]]
    spike["hold_s"] = hold
    spike["p99_limit_ms"] = limit
    spike["p99_recovery_s"], spike["p99_excursions"] = (recovery_time(p99, limit, spike_end, hold)
                                                        if limit else (None, []))
    spike["waiters_recovery_s"], _ = recovery_time(waiters, spike["baseline_max_waiters"], spike_end, hold)
    above = [t for t, v in waiters if v > spike["baseline_max_waiters"]]
    spike["waiters_last_above_s"] = (max(above) - spike_end) if above else None
    return spike


def nice_ticks(low, high, count=5):
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def chart(path, title, x_label, y_label, series, log_y=False, vertical_lines=(), width=720, height=420):
    """Writes a line chart. series: list of (name, colour, dash, [(x, y)])."""
    left, right, top, bottom = 70, 170, 40, 55
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [(x, y) for _, _, _, data in series for x, y in data if y is not None]
    xs = [x for x, _ in points] or [0, 1]
    ys = [y for _, y in points] or [1]
    x_min, x_max = 0, max(xs) * 1.05
    if log_y:
        positive = [y for y in ys if y > 0] or [1]
        y_min = 10 ** math.floor(math.log10(min(positive)))
        y_max = 10 ** math.ceil(math.log10(max(positive)))
        if y_max <= y_min:
            y_max = y_min * 10
    else:
        y_min, y_max = 0, max(ys) * 1.1 or 1

    def sx(x):
        return left + (x - x_min) / (x_max - x_min) * plot_w

    def sy(y):
        if log_y:
            y = max(y, y_min)
            return top + plot_h - (math.log10(y) - math.log10(y_min)) / (math.log10(y_max) - math.log10(y_min)) * plot_h
        return top + plot_h - (y - y_min) / (y_max - y_min) * plot_h

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (left, escape(title))]
    for tick in nice_ticks(x_min, x_max):
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (sx(tick), top, sx(tick), top + plot_h))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (sx(tick), top + plot_h + 16, tick))
    if log_y:
        y_ticks = []
        value = y_min
        while value <= y_max * 1.0001:
            y_ticks.append(value)
            value *= 10
    else:
        y_ticks = nice_ticks(y_min, y_max)
    for tick in y_ticks:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, sy(tick), left + plot_w, sy(tick)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 6, sy(tick) + 4, tick))
    for x, label in vertical_lines:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="3,3"/>'
                   % (sx(x), top, sx(x), top + plot_h))
        out.append('<text x="%.1f" y="%d" fill="#555" font-size="11">%s</text>' % (sx(x) + 3, top + 12, escape(label)))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (left, top, plot_w, plot_h))
    out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (left + plot_w / 2, height - 12, escape(x_label)))
    out.append('<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>'
               % (top + plot_h / 2, top + plot_h / 2, escape(y_label)))
    for index, (name, colour, dash, data) in enumerate(series):
        drawn = [(sx(x), sy(y)) for x, y in data if y is not None and (not log_y or y > 0)]
        if drawn:
            path_text = " ".join("%.1f,%.1f" % point for point in drawn)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>'
                       % (path_text, colour, dash))
            for x, y in drawn:
                out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (x, y, colour))
        legend_y = top + 14 + index * 18
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>'
                   % (left + plot_w + 12, legend_y - 4, left + plot_w + 36, legend_y - 4, colour, dash))
        out.append('<text x="%d" y="%d">%s</text>' % (left + plot_w + 40, legend_y, escape(name)))
    out.append("</svg>")
    with open(path, "w") as handle:
        handle.write("\n".join(out) + "\n")


def fmt(value, digits=0):
    if value is None:
        return "–"
    return ("%%.%df" % digits) % value


def main():
    results, docs = sys.argv[1], sys.argv[2]
    meta, sweeps, spikes = load(results)
    saturation = meta["saturation_rps"]

    goodput_series, latency_series = [], []
    for mode, steps in sweeps.items():
        colour = COLOURS.get(mode, "#333")
        goodput_series.append(("%s" % mode, colour, "", [(s["offered"] / saturation, s["goodput"]) for s in steps]))
        goodput_series.append(("%s, ≤ 1 s" % mode, colour, "6,4",
                               [(s["offered"] / saturation, s["goodput_slo"]) for s in steps]))
        for quantile in ("p50", "p99"):
            latency_series.append(("%s %s" % (mode, quantile), colour, DASHES[quantile],
                                   [(s["offered"] / saturation, s["%s_ms" % quantile]) for s in steps]))
    goodput_series.append(("offered", "#999", "2,3", [(s["offered"] / saturation, s["offered"])
                                                        for s in next(iter(sweeps.values()))]))
    chart(os.path.join(docs, "load-test-goodput.svg"),
          "Goodput (2xx answers/s) vs offered load; saturation %.0f req/s" % saturation,
          "offered load (× saturation)", "requests per second", goodput_series)
    chart(os.path.join(docs, "load-test-latency.svg"),
          "Latency of accepted requests vs offered load",
          "offered load (× saturation)", "milliseconds (log)", latency_series, log_y=True)
    if spikes:
        first = next(iter(spikes.values()))
        marks = [(first["before"], "spike"), (first["before"] + first["during"], "back to half")]
        p99_series = [("%s p99" % mode, COLOURS.get(mode, "#333"), "",
                       [(p["t"] + spike["window"] / 2, p["p99_ms"]) for p in spike["timeline"]])
                      for mode, spike in spikes.items()]
        waiter_series = [("%s" % mode, COLOURS.get(mode, "#333"), "",
                          [(s["t"], s.get("waiters", 0)) for s in spike["scrapes"]])
                         for mode, spike in spikes.items()]
        chart(os.path.join(docs, "load-test-spike.svg"),
              "Spike: p99 of accepted requests per %.1f s window (by send time)" % first["window"],
              "seconds", "milliseconds (log)", p99_series, log_y=True, vertical_lines=marks)
        chart(os.path.join(docs, "load-test-spike-waiters.svg"),
              "Spike: requests waiting for a pool connection (/metrics)", "seconds", "waiters",
              waiter_series, vertical_lines=marks)

    lines = []
    lines.append("# Load test: the orders service past saturation")
    lines.append("")
    lines.append("Measured by `bash Examples/loadtest/run.sh` on %s (%s). The numbers below are this run's; the "
                 "script regenerates this page and the plots." % (
                     meta["when"], "the script ran %.1f minutes, its incremental release build included" % (meta["duration_s"] / 60.0)
                     if "duration_s" in meta else "one run"))
    lines.append("")
    lines.append("## Set-up")
    lines.append("")
    lines.append("- Machine: %s; load average at the start %s. The load generator, the service and PostgreSQL share "
                 "these cores." % (meta["machine"], meta["load"]))
    lines.append("- Service: `orders-service` built in release, `POST /orders` only (a transaction that takes stock, "
                 "inserts the order, then holds its connection %s ms in `pg_sleep` to model a heavier database, and "
                 "enqueues a background job). Pool of %s connections on a throwaway PostgreSQL (Unix socket)."
                 % (meta["simulated_query_ms"], meta["pool_size"]))
    for mode in meta["modes"]:
        lines.append("- **%s**: %s" % (mode, DESCRIPTIONS.get(mode, "").format(**meta)))
    lines.append("- Saturation: %.0f requests/s, found closed-loop with `wrk` (%s) against the unbounded service."
                 % (saturation, meta["wrk"]))
    lines.append("- Load: `Examples/loadtest/loadgen.py`, open loop: request *i* is due at *i*/rate whatever happened "
                 "before (a new connection when no idle one is free), and its latency counts from that due time, so "
                 "queueing in the service or a late generator is never hidden (no coordinated omission). Steps of "
                 "%s s; the first second of each is left out of the figures. **Goodput** counts the 2xx answers that "
                 "*arrived* during the step, per second (answers delivered after the step, as a backlog drains, do "
                 "not count); **≤ 1 s** counts only those that took at most a second. p50/p99/max are of accepted "
                 "(2xx) requests, by the step they were sent in, including those answered after it. *Limit at end* is "
                 "the limiter's limit (fixed, adaptive) or else the pool's effective maximum, in the step's last "
                 "scrape of `/metrics`. Each service is warmed up for 4 s at half load before its first step."
                 % meta["step_s"])
    lines.append("")
    lines.append("![goodput](load-test-goodput.svg)")
    lines.append("")
    lines.append("![latency](load-test-latency.svg)")
    lines.append("")
    for mode, steps in sweeps.items():
        lines.append("### %s" % mode)
        lines.append("")
        lines.append("| offered (req/s) | × saturation | goodput (2xx/s) | ≤ 1 s (2xx/s) | p50 (ms) | p99 (ms) | "
                     "max (ms) | 503 | 503 p99 (ms) | errors/timeouts | max pool waiters | limit at end |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in steps:
            lines.append("| %.0f | %.2f | %.0f | %.0f | %s | %s | %s | %d | %s | %d | %s | %s |" % (
                s["offered"], s["offered"] / saturation, s["goodput"], s["goodput_slo"], fmt(s["p50_ms"], 1),
                fmt(s["p99_ms"], 1),
                fmt(s["max_ms"], 0), s["shed"], fmt(s["shed_p99_ms"], 1), s["errors"] + s["not_sent"],
                fmt(s["max_waiters"], 0), fmt(s.get("limit_at_end"), 0)))
        lines.append("")

    lines.append("## Goals")
    lines.append("")
    shedding = sweeps.get("shedding", [])
    if shedding:
        half = min(shedding, key=lambda s: abs(s["offered"] / saturation - 0.5))
        triple = min(shedding, key=lambda s: abs(s["offered"] / saturation - 3.0))
        peak = max(s["goodput"] for s in shedding)
        ratio = (triple["p99_ms"] / half["p99_ms"]) if triple["p99_ms"] and half["p99_ms"] else None
        share = triple["goodput"] / peak if peak else None
        lines.append("| goal (with shedding) | measured | met |")
        lines.append("|---|---|---|")
        lines.append("| p99 of accepted at 3× saturation within 3× its half-load value | %s ms vs %s ms: %s× | %s |" % (
            fmt(triple["p99_ms"], 1), fmt(half["p99_ms"], 1), fmt(ratio, 2),
            "yes" if ratio is not None and ratio <= 3 else "no"))
        lines.append("| goodput at 3× saturation ≥ 90 %% of peak | %.0f of %.0f req/s: %s %% | %s |" % (
            triple["goodput"], peak, fmt(share * 100 if share else None, 0),
            "yes" if share is not None and share >= 0.9 else "no"))
        spike = spikes.get("shedding")
        if spike:
            recovery = spike["p99_recovery_s"]
            lines.append("| after the spike, p99 back within 2 s | %s | %s |" % (
                "%s s" % fmt(recovery, 1) if recovery is not None else "not within the %s s measured" % spike["after"],
                "yes" if recovery is not None and recovery <= 2 else "no"))
        lines.append("")

    lines.append("## Spike: half load → 3× saturation for %s s → half load" % next(iter(spikes.values()))["during"]
                 if spikes else "## Spike")
    lines.append("")
    if spikes:
        first = next(iter(spikes.values()))
        lines.append("p99 is computed per %.1f s window of intended send times (requests sent in that half second, "
                     "whenever they were answered). *Recovered after* is the time from the end of the spike to the "
                     "first window from which p99 stays at most %.1f× the half-load p99 (seconds 2–%d of the run) "
                     "for %.0f s; for the pool's waiters (`db_client_connection_pending_requests`, scraped from "
                     "`/metrics` every %.2f s), the first scrape from which they stay at most their half-load "
                     "maximum for as long. Windows that rise above the limit again later are listed, not hidden."
                     % (first["window"], first["tolerance"], first["before"], first["hold_s"], meta["scrape_s"]))
        lines.append("")
        lines.append("| mode | half-load p99 (ms) | during: goodput (2xx/s), p99 (ms), 503s | after: p99 (ms) | "
                     "p99 recovered after | later windows above the limit | waiters recovered after |")
        lines.append("|---|---|---|---|---|---|---|")
        for mode, spike in spikes.items():
            during, after = spike["during_summary"], spike["after_summary"]
            excursions = spike["p99_excursions"]
            lines.append("| %s | %s | %.0f, %s, %d | %s | %s | %s | %s |" % (
                mode, fmt(spike["baseline_p99_ms"], 1), during["goodput"], fmt(during["p99_ms"], 1), during["shed"],
                fmt(after["p99_ms"], 1),
                "%s s" % fmt(spike["p99_recovery_s"], 1) if spike["p99_recovery_s"] is not None
                else "not within the %.0f s measured" % spike["after"],
                ("%d (at %s)" % (len(excursions), ", ".join("%.1f s: %.0f ms" % (t - spike["before"] - spike["during"], v)
                                                           for t, v in excursions)))
                if excursions else "none",
                "%s s" % fmt(spike["waiters_recovery_s"], 2) if spike["waiters_recovery_s"] is not None
                else "not within the %.0f s measured (last above at +%.1f s)" % (
                    spike["after"], spike["waiters_last_above_s"] or 0)))
        lines.append("")
        lines.append("![spike p99](load-test-spike.svg)")
        lines.append("")
        lines.append("![spike waiters](load-test-spike-waiters.svg)")
        lines.append("")

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):
        with open(notes) as handle:
            lines.append(handle.read().rstrip("\n"))
        lines.append("")
    lines.append("## Reproduce")
    lines.append("")
    lines.append("```bash")
    lines.append(meta["command"])
    lines.append("```")
    lines.append("")
    lines.append("The raw results of this run (JSON lines per step) are written to the results folder the script "
                 "prints; the load test is not part of the test command.")
    lines.append("")
    with open(os.path.join(docs, "load-test.md"), "w") as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    main()
