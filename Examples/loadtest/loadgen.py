#!/usr/bin/env python3
"""Open-loop HTTP load generator for the orders service (Python standard library only).

Requests are sent at a fixed arrival rate, on a schedule decided in advance: request i is due at
start + i / rate, whether or not earlier requests have been answered (open loop). Each latency is measured from
the request's *intended* send time, so a stalled server or a busy generator cannot hide queueing (no coordinated
omission). A request that finds no idle keep-alive connection opens a new one.

Subcommands:
  sweep  --rates R1,R2,... --duration S   one step per rate; prints one JSON object per step
  spike  --base R --peak R --before S --during S --after S   a step from base to peak and back; prints JSON
Both scrape the service's /metrics every --scrape-interval seconds (pool waiters, connections in use, limiter).
"""

import argparse
import asyncio
import json
import random
import resource
import sys
import time

METRIC_NAMES = {
    "db_client_connection_pending_requests": "waiters",
    "backpressure_limiter_in_flight": "limiter_in_flight",
    "backpressure_limiter_limit": "limiter_limit",
    "reservoir_pool_effective_max": "pool_effective_max",
}


def percentile(values, fraction):
    """The nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Connection:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer


class LoadGenerator:
    def __init__(self, host, port, timeout, max_outstanding):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        self.idle = []
        self.outstanding = 0
        self.results = []  # (intended, status, latency) — status 0 = transport error or timeout
        self.not_sent = 0
        self.counter = 0

    async def connect(self):
        if self.idle:
            return self.idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return Connection(reader, writer)

    def request_bytes(self):
        self.counter += 1
        body = json.dumps({
            "customer": "load-%d" % (self.counter % 1000),
            "item": "item-%d" % random.randint(1, 100),
            "quantity": 1,
        }).encode()
        head = (
            "POST /orders HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (self.host, self.port, len(body))
        ).encode()
        return head + body

    async def exchange(self, connection, payload):
        connection.writer.write(payload)
        await connection.writer.drain()
        head = await connection.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                keep_alive = False
        if length:
            await connection.reader.readexactly(length)
        return status, keep_alive

    async def one(self, intended):
        self.outstanding += 1
        status = 0
        connection = None
        try:
            connection = await asyncio.wait_for(self.connect(), self.timeout)
            status, keep_alive = await asyncio.wait_for(
                self.exchange(connection, self.request_bytes()), self.timeout
            )
            if keep_alive:
                self.idle.append(connection)
                connection = None
        except Exception:
            status = 0
        finally:
            if connection is not None:
                connection.writer.close()
            self.outstanding -= 1
        self.results.append((intended, status, time.monotonic() - intended))

    async def drive(self, phases, origin):
        """Sends requests for each (rate, seconds) phase back to back; returns when the last one is answered."""
        # Only requests still in flight are kept: gathering thousands of finished tasks at the end would run their
        # callbacks on the event loop just as the last answers arrive, and delay (and so inflate) exactly those.
        pending = set()
        start = origin
        for rate, seconds in phases:
            count = int(rate * seconds)
            for index in range(count):
                due = start + index / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif index % 16 == 0:
                    await asyncio.sleep(0)  # behind schedule: catch up, but let answers in
                if self.outstanding >= self.max_outstanding:
                    self.not_sent += 1
                    self.results.append((due, -1, 0.0))
                    continue
                task = asyncio.ensure_future(self.one(due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            start += seconds
        while pending:
            await asyncio.wait(set(pending))

    async def close_all(self):
        for connection in self.idle:
            connection.writer.close()
        self.idle = []


async def scrape(host, port, interval, samples, stop, origin):
    """Reads /metrics every `interval` seconds into samples: (t, {name: value})."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            writer.write(("GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(-1), 5)
            writer.close()
            values = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if line.startswith("#"):
                    continue
                for metric, key in METRIC_NAMES.items():
                    if line.startswith(metric + "{") or line.startswith(metric + " "):
                        try:
                            values[key] = values.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
                        except ValueError:
                            pass
            samples.append((time.monotonic() - origin, values))
        except Exception:
            pass
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


SLO_SECONDS = 1.0


def summarise(results, origin, begin, end, duration):
    """Figures of the requests whose intended send time falls in [begin, end) seconds after origin.

    Goodput is counted by completion time instead: 2xx answers that *arrived* in [begin, end), per second (an
    answer to a request sent in the window but delivered long after it is not throughput of that window);
    `goodput_slo` counts only those that took at most SLO_SECONDS.
    """
    done = [r for r in results if 200 <= r[1] < 300 and begin <= r[0] + r[2] - origin < end]
    chosen = [r for r in results if begin <= r[0] - origin < end]
    ok = [r[2] for r in chosen if 200 <= r[1] < 300]
    shed = [r[2] for r in chosen if r[1] == 503]
    limited = [r for r in chosen if r[1] == 429]
    failed = [r for r in chosen if r[1] == 0]
    not_sent = [r for r in chosen if r[1] == -1]
    other = len(chosen) - len(ok) - len(shed) - len(limited) - len(failed) - len(not_sent)
    return {
        "sent": len(chosen) - len(not_sent),
        "ok": len(ok),
        "shed": len(shed),
        "rate_limited": len(limited),
        "errors": len(failed),
        "not_sent": len(not_sent),
        "other": other,
        "goodput": len(done) / duration if duration > 0 else 0,
        "goodput_slo": len([r for r in done if r[2] <= SLO_SECONDS]) / duration if duration > 0 else 0,
        "slo_s": SLO_SECONDS,
        "p50_ms": None if not ok else percentile(ok, 0.50) * 1000,
        "p99_ms": None if not ok else percentile(ok, 0.99) * 1000,
        "max_ms": None if not ok else max(ok) * 1000,
        "shed_p99_ms": None if not shed else percentile(shed, 0.99) * 1000,
    }


async def sweep(args):
    rates = [float(r) for r in args.rates.split(",")]
    for rate in rates:
        generator = LoadGenerator(args.host, args.port, args.timeout, args.max_outstanding)
        samples, stop = [], asyncio.Event()
        origin = time.monotonic() + 0.2
        scraper = asyncio.ensure_future(scrape(args.host, args.port, args.scrape_interval, samples, stop, origin))
        await generator.drive([(rate, args.duration)], origin)
        stop.set()
        await scraper
        await generator.close_all()
        # The first second warms connections up; figures cover the rest of the step.
        step = summarise(generator.results, origin, 1.0, args.duration, args.duration - 1.0)
        step["offered"] = rate
        if args.raw:
            write_raw(args.raw, "sweep", rate, generator.results, origin)
        step["wall_s"] = time.monotonic() - origin
        waiters = [s[1].get("waiters", 0) for s in samples if s[0] >= 1.0]
        step["max_waiters"] = max(waiters) if waiters else None
        # The limit in force at the end of the step: the limiter's when there is one, else the pool's maximum.
        last = samples[-1][1] if samples else {}
        step["limit_at_end"] = last.get("limiter_limit", last.get("pool_effective_max"))
        print(json.dumps(step), flush=True)


def write_raw(path, kind, rate, results, origin):
    """Appends one CSV line per request: kind, rate, intended send time (s after the start), status, latency (s)."""
    with open(path, "a") as handle:
        for intended, status, latency in results:
            handle.write("%s,%.1f,%.6f,%d,%.6f\n" % (kind, rate, intended - origin, status, latency))


def recovery_time(series, limit, after, hold):
    """Seconds after `after` until `series` ((t, value) points) is back at most `limit` and stays there for at least
    `hold` seconds; None if that never happens in the series. Also returns the later points above the limit
    (excursions unrelated to the event show up there rather than moving the recovery time)."""
    later = [(t, v) for t, v in series if t >= after and v is not None]
    for index, (start, value) in enumerate(later):
        if value > limit:
            continue
        run = [point for point in later[index:] if point[0] < start + hold]
        if later[-1][0] < start + hold - 1e-9:
            return None, []  # not enough series left to tell
        if all(v <= limit for _, v in run):
            excursions = [(t, v) for t, v in later[index:] if v > limit]
            return start - after, excursions
    return None, []


async def spike(args):
    generator = LoadGenerator(args.host, args.port, args.timeout, args.max_outstanding)
    samples, stop = [], asyncio.Event()
    origin = time.monotonic() + 0.2
    scraper = asyncio.ensure_future(scrape(args.host, args.port, args.scrape_interval, samples, stop, origin))
    phases = [(args.base, args.before), (args.peak, args.during), (args.base, args.after)]
    await generator.drive(phases, origin)
    stop.set()
    await scraper
    await generator.close_all()

    if args.raw:
        write_raw(args.raw, "spike", args.peak, generator.results, origin)
    spike_end = args.before + args.during
    total = spike_end + args.after
    window = args.window
    timeline = []
    t = 0.0
    while t + window <= total + 1e-9:
        figures = summarise(generator.results, origin, t, t + window, window)
        timeline.append({"t": t, "p99_ms": figures["p99_ms"], "goodput": figures["goodput"],
                         "shed": figures["shed"], "ok": figures["ok"]})
        t += window
    baseline = summarise(generator.results, origin, 2.0, args.before, args.before - 2.0)
    baseline_waiters = [s[1].get("waiters", 0) for s in samples if 2.0 <= s[0] < args.before]
    waiter_limit = max(baseline_waiters) if baseline_waiters else 0
    p99_limit = baseline["p99_ms"] * args.tolerance if baseline["p99_ms"] else None
    p99_series = [(point["t"], point["p99_ms"]) for point in timeline]
    waiter_series = [(s[0], s[1].get("waiters", 0)) for s in samples]
    p99_recovery, p99_excursions = (recovery_time(p99_series, p99_limit, spike_end, args.hold)
                                    if p99_limit else (None, []))
    waiters_recovery, _ = recovery_time(waiter_series, waiter_limit, spike_end, args.hold)
    print(json.dumps({
        "base": args.base,
        "peak": args.peak,
        "before": args.before,
        "during": args.during,
        "after": args.after,
        "window": window,
        "baseline_p99_ms": baseline["p99_ms"],
        "baseline_max_waiters": waiter_limit,
        "tolerance": args.tolerance,
        "during_summary": summarise(generator.results, origin, args.before, spike_end, args.during),
        "after_summary": summarise(generator.results, origin, spike_end, total, args.after),
        "hold_s": args.hold,
        "p99_recovery_s": p99_recovery,
        "p99_excursions": p99_excursions,
        "waiters_recovery_s": waiters_recovery,
        "timeline": timeline,
        "scrapes": [{"t": s[0], **s[1]} for s in samples],
    }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["sweep", "spike"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=40.0, help="client timeout per request, seconds")
    parser.add_argument("--max-outstanding", type=int, default=6000)
    parser.add_argument("--scrape-interval", type=float, default=0.25)
    parser.add_argument("--rates", help="sweep: offered loads, requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="sweep: seconds per step")
    parser.add_argument("--base", type=float, help="spike: the half load")
    parser.add_argument("--peak", type=float, help="spike: the peak load")
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--during", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=20.0)
    parser.add_argument("--raw", help="append every request (CSV) to this file")
    parser.add_argument("--window", type=float, default=0.5, help="spike: seconds per timeline point")
    parser.add_argument("--hold", type=float, default=3.0,
                        help="spike: seconds a figure must stay back at its half-load value to count as recovered")
    parser.add_argument("--tolerance", type=float, default=1.5,
                        help="spike: p99 counts as recovered at most this many times its half-load value")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    random.seed(11)
    asyncio.run(sweep(args) if args.command == "sweep" else spike(args))


if __name__ == "__main__":
    sys.exit(main())
