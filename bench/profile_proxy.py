#!/usr/bin/env python3
"""CPU and system calls per round trip (or per connection) for the proxies, from the
kernel's own counters.

    python3 bench/profile_proxy.py                  # wharf-proxy and haproxy, 64 connections
    python3 bench/profile_proxy.py --connections 1000
    python3 bench/profile_proxy.py --mode connect --servers wharf-proxy,haproxy,nginx

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

EVENTS = ["task-clock", "context-switches", "raw_syscalls:sys_enter"] + [
    f"syscalls:sys_enter_{name}" for name in ("read", "recvfrom", "write", "sendto", "sendmsg", "epoll_wait",
                                              "epoll_ctl", "accept4", "connect", "close", "setsockopt")]


def profile(name, connections, mode):
    server = run.Server(name)
    try:
        load = subprocess.Popen(run.pinned(run.CLIENT_CPU, [
            os.path.join(run.BENCH_BIN, "loadgen"), mode, "--port", str(server.port),
            "--connections", str(connections), "--size", "64", "--duration", "5", "--warmup", "1"]),
            stdout=subprocess.PIPE, text=True)
        time.sleep(2.5)
        # The supervisor's (nginx's master's) children do the work: watch them all.
        pids = ",".join(str(pid) for pid in [server.pid] + run.setup.children(server.pid))
        stat = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-p", pids,
                               "--", "sleep", "2"], capture_output=True, text=True)
        out, _ = load.communicate()
    finally:
        server.stop()
    result = run.json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    rps = result["rps" if mode == "pingpong" else "cps"]
    counts = {}
    for line in stat.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "", 1).isdigit():
            event = fields[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all syscalls")
            counts[event] = float(fields[0])
    operations = rps * 2  # perf watched 2 s of the steady state
    unit = "round trip" if mode == "pingpong" else "connection"
    calls = [f"{count / operations:.2f} {event}" for event, count in counts.items()
             if event != "task-clock" and count > 0]
    print(f"{name}: {rps:,.0f} {'rt' if mode == 'pingpong' else 'conn'}/s, "
          f"{counts.get('task-clock', 0) * 1000 / operations:.2f} µs CPU per {unit}; per {unit}: {', '.join(calls)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--servers", default="wharf-proxy,haproxy")
    parser.add_argument("--mode", choices=["pingpong", "connect"], default="pingpong",
                        help="connect: connect, one round trip, close (32 connections at a time)")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    run.build(skip_swift=False)
    for name in args.servers.split(","):
        profile(name, 32 if args.mode == "connect" and args.connections == 64 else args.connections, args.mode)


if __name__ == "__main__":
    main()
