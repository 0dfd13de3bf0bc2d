"""Shared helpers for bench/checks and bench/detect: processes, /proc readings, Prometheus text, lantern start-up.

Standard library only. Loopback only.
"""

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LANTERN = os.path.join(ROOT, "target/release/lantern")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(k):
    """k distinct free loopback ports (all bound at once, so none repeats)."""
    socks = [socket.socket() for _ in range(k)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid):
    """utime + stime of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds():
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def mem_mib(pid, key):
    """A line of /proc/PID/status such as VmRSS or VmHWM, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_release():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def ensure_debian(package, binary):
    """The binary's path, installing the Debian package if missing (services blocked by policy-rc.d)."""
    exe = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    if exe:
        return exe
    policy = "/usr/sbin/policy-rc.d"
    existed = os.path.exists(policy)
    if not existed:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    finally:
        if not existed:
            os.remove(policy)
    exe = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    if not exe:
        sys.exit(f"{package} installed but {binary} not found")
    return exe


def start_lantern(tmp, config_text, extra_env=None):
    """Starts `lantern run` on 127.0.0.1:0 with the config in `tmp`; returns (Popen, "host:port").

    stderr goes to a file (a pipe could fill and stall lantern's logging);
    the bound address is read from its "listening on http://ADDR" line.
    """
    cfg = os.path.join(tmp, "lantern.toml")
    with open(cfg, "w") as f:
        f.write(config_text)
    log_path = os.path.join(tmp, "lantern.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([LANTERN, "run", "--config", cfg, "--listen", "127.0.0.1:0", "--log-format", "text"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, **(extra_env or {}),
                                                                            NO_COLOR="1"))
    log.close()
    deadline = time.time() + 60
    pattern = re.compile(r"listening on http://([0-9.]+:[0-9]+)")
    while time.time() < deadline:
        with open(log_path, "rb") as f:
            m = pattern.search(re.sub(rb"\x1b\[[0-9;]*m", b"", f.read()).decode("utf-8", "replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            with open(log_path, "rb") as f:
                sys.exit("lantern exited at start:\n" + f.read().decode("utf-8", "replace")[-4000:])
        time.sleep(0.05)
    proc.kill()
    sys.exit("lantern never logged its listening address")


def wait_http(url, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{url} never answered")


def stop(proc, timeout=20):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text, prefixes):
    """Samples whose name starts with one of `prefixes`: a list of (name, {label: value}, float)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            name, _, rest = head.partition("{")
            labels = dict(_LABELS.findall(rest))
        else:
            name, labels = head, {}
        try:
            out.append((name, labels, float(value)))
        except ValueError:
            pass
    return out


def histogram(samples, name):
    """Cumulative buckets [(le, count)] sorted by le, plus (sum, count), of an unlabelled histogram."""
    buckets, total, n = [], 0.0, 0.0
    for s_name, labels, v in samples:
        if s_name == name + "_bucket":
            buckets.append((float(labels["le"]), v))
        elif s_name == name + "_sum":
            total = v
        elif s_name == name + "_count":
            n = v
    buckets.sort()
    return buckets, total, n


def histogram_delta(before, after):
    b0, s0, n0 = before
    b1, s1, n1 = after
    start = dict(b0)
    return [(le, c - start.get(le, 0.0)) for le, c in b1], s1 - s0, n1 - n0


def bucket_quantile(q, buckets):
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q.

    Returns (value, upper bound of that bucket); the value is only as good as
    the bucket bounds. A rank in the +Inf bucket returns the last finite bound.
    """
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return float("nan"), float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le, le
            if c == prev_c:
                return le, le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c), le
        prev_le, prev_c = le, c
    return prev_le, float("inf")


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]
