#!/usr/bin/env python3
"""CPU and system calls per round trip for the proxies, from the kernel's own counters.

    python3 bench/profile_proxy.py                  # wharf-proxy and haproxy, 64 connections
    python3 bench/profile_proxy.py --connections 1000

Starts each proxy as `run.py` does (one thread pinned to CPU 1, a c-epoll backend and the
load generator on CPU 0), drives ping-pong, and runs `perf stat` on the proxy process for
two seconds in the middle of the run. Needs `perf` (linux-perf) and a release build
(`run.py` makes one).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

EVENTS = ["task-clock"] + [f"syscalls:sys_enter_{name}" for name in
                           ("read", "recvfrom", "write", "sendto", "sendmsg", "epoll_wait")]


def profile(name, connections):
    server = run.Server(name)
    try:
        load = subprocess.Popen(run.pinned(run.CLIENT_CPU, [
            os.path.join(run.BENCH_BIN, "loadgen"), "pingpong", "--port", str(server.port),
            "--connections", str(connections), "--size", "64", "--duration", "5", "--warmup", "1"]),
            stdout=subprocess.PIPE, text=True)
        time.sleep(2.5)
        stat = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-p", str(server.pid),
                               "--", "sleep", "2"], capture_output=True, text=True)
        out, _ = load.communicate()
    finally:
        server.stop()
    rps = run.json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["rps"]
    counts = {}
    for line in stat.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "", 1).isdigit():
            counts[fields[2].replace("syscalls:sys_enter_", "")] = float(fields[0])
    round_trips = rps * 2  # perf watched 2 s of the steady state
    calls = [f"{count / round_trips:.2f} {event}" for event, count in counts.items()
             if event != "task-clock" and count > 0]
    print(f"{name}: {rps:,.0f} rt/s, {counts.get('task-clock', 0) * 1000 / round_trips:.2f} µs CPU "
          f"per round trip; per round trip: {', '.join(calls)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--servers", default="wharf-proxy,haproxy")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    run.build(skip_swift=False)
    for name in args.servers.split(","):
        profile(name, args.connections)


if __name__ == "__main__":
    main()
