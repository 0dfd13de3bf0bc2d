#!/usr/bin/env python3
"""Fixed-rate load driver for blackbox_exporter's /probe endpoint (run by bench/checks).

Issues GET PATH (rotating among several --path) at RATE requests/s over keep-alive HTTP/1.1 connections to
HOST:PORT (opening more, up to --max-conns, whenever every connection is
busy), for SECONDS. Every 100 ms it prints "T OK FAIL BACKLOG" (wall clock,
completed probes whose body says probe_success 1, completed probes that
failed or errored, requests due but not yet sent); at the end one line
"done ..." with totals. The schedule is absolute (request k is due at
start + k/RATE), so a stall is caught up rather than lost.

Standard library only; asyncio protocols rather than streams, to keep the
driver's own CPU (which bench/checks excludes from blackbox's figures) low.
"""

import argparse
import asyncio
import signal
import sys
import time


class Driver:
    def __init__(self, loop, host, port, paths, max_conns):
        self.loop, self.host, self.port, self.max_conns = loop, host, port, max_conns
        self.requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-driver\r\n\r\n".encode()
                         for p in paths]
        self.next = 0
        self.idle = []
        self.conns = 0
        self.opening = 0
        self.backlog = 0
        self.ok = 0
        self.fail = 0
        self.errors = 0
        self.latencies = []

    def dispatch(self):
        if self.idle:
            self.idle.pop().send()
        else:
            self.backlog += 1
            if self.conns + self.opening < self.max_conns and self.opening < self.backlog:
                self.opening += 1
                self.loop.create_task(self.open())

    async def open(self):
        try:
            await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError:
            self.errors += 1
        finally:
            self.opening -= 1

    def ready(self, conn):
        if self.backlog > 0:
            self.backlog -= 1
            conn.send()
        else:
            self.idle.append(conn)


class Conn(asyncio.Protocol):
    def __init__(self, driver):
        self.d = driver
        self.buf = bytearray()
        self.t = None
        self.busy = False

    def connection_made(self, transport):
        self.t = transport
        self.d.conns += 1
        self.d.ready(self)

    def connection_lost(self, exc):
        self.d.conns -= 1
        if self.busy:
            self.d.fail += 1
            self.d.errors += 1
            self.busy = False
        if self in self.d.idle:
            self.d.idle.remove(self)

    def send(self):
        self.busy = True
        self.sent_at = time.perf_counter()
        d = self.d
        d.next = (d.next + 1) % len(d.requests)
        self.t.write(d.requests[d.next])

    def data_received(self, data):
        self.buf += data
        while self.busy:
            body = self.parse()
            if body is None:
                return
            self.busy = False
            self.d.latencies.append(time.perf_counter() - self.sent_at)
            if b"\nprobe_success 1" in body:
                self.d.ok += 1
            else:
                self.d.fail += 1
            self.d.ready(self)

    def parse(self):
        """One complete response's body (and consume it), or None if incomplete."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        pos = end + 4
        if b"transfer-encoding: chunked" in head:
            body = bytearray()
            while True:
                eol = self.buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
                start = eol + 2
                if len(self.buf) < start + size + 2:
                    return None
                body += self.buf[start:start + size]
                pos = start + size + 2
                if size == 0:
                    break
        else:
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buf) < pos + length:
                return None
            body = self.buf[pos:pos + length]
            pos += length
        del self.buf[:pos]
        return bytes(body)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True, action="append", help="repeat to rotate among several")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--max-conns", type=int, default=256)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("loopback only")
    loop = asyncio.get_running_loop()
    d = Driver(loop, args.host, args.port, args.path, args.max_conns)
    period = 1.0 / args.rate
    start = loop.time()
    end = [start + args.seconds]
    # SIGTERM ends the run early but still lets in-flight probes finish and prints the totals.
    loop.add_signal_handler(signal.SIGTERM, lambda: end.__setitem__(0, loop.time()))
    sent = 0
    next_report = start
    while True:
        now = loop.time()
        if now >= end[0]:
            break
        due = int((now - start) / period) + 1
        while sent < due:
            d.dispatch()
            sent += 1
        if now >= next_report:
            print(f"{time.time():.3f} {d.ok} {d.fail} {d.backlog}", flush=True)
            next_report += 0.1
        await asyncio.sleep(max(0.0, start + sent * period - loop.time()))
    # Let the last requests finish (bounded by blackbox's own probe timeout).
    deadline = loop.time() + 6
    while d.ok + d.fail < sent - d.backlog and loop.time() < deadline:
        await asyncio.sleep(0.01)
    print(f"{time.time():.3f} {d.ok} {d.fail} {d.backlog}", flush=True)
    lat = sorted(d.latencies)
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    print(f"done sent={sent} ok={d.ok} fail={d.fail} errors={d.errors} backlog={d.backlog} conns={d.conns} "
          f"latency_ms_p50={q(0.5):.1f} latency_ms_p99={q(0.99):.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
