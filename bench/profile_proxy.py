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

It also prints each busy thread's share: user and system CPU per operation and the times it
went to sleep (voluntary context switches), from `/proc/PID/task/*` over the second before
perf starts. That is where a proxy that runs on two threads (Wharf's loop and its relay
pump) shows what the second thread costs against one that runs on one.
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


def thread_times(pids):
    """Per thread (pid, tid, name): user and system clock ticks, voluntary and involuntary
    context switches."""
    times = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    raw = f.read()
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except FileNotFoundError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            times[(pid, tid, name)] = (int(fields[11]), int(fields[12]),
                                       int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return times


def print_threads(before, after, seconds, operations, unit):
    hz = os.sysconf("SC_CLK_TCK")
    for key, (user, system, voluntary, involuntary) in after.items():
        if key not in before:
            continue
        du, ds, dv, di = (user - before[key][0], system - before[key][1],
                          voluntary - before[key][2], involuntary - before[key][3])
        if (du + ds) * 100 < hz * seconds:  # under 1% of a CPU over the window
            continue
        print(f"    thread {key[2]:<16} user {du * 1e6 / hz / operations:5.1f} µs, system "
              f"{ds * 1e6 / hz / operations:5.1f} µs per {unit}; sleeps {dv / operations:.3f}, "
              f"preempted {di / operations:.3f} per {unit}")


def profile(name, connections, mode):
    server = run.Server(name)
    try:
        load = subprocess.Popen(run.pinned(run.CLIENT_CPU, [
            os.path.join(run.BENCH_BIN, "loadgen"), mode, "--port", str(server.port),
            "--connections", str(connections), "--size", "64", "--duration", "5", "--warmup", "1"]),
            stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        # The supervisor's (nginx's master's) children do the work: watch them all.
        watched = [server.pid] + run.setup.children(server.pid)
        pids = ",".join(str(pid) for pid in watched)
        # The threads are read over a second of their own: perf's tracepoints would add
        # their cost to every system call's.
        threads_before, started = thread_times(watched), time.monotonic()
        time.sleep(1)
        threads_after, thread_seconds = thread_times(watched), time.monotonic() - started
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
    print_threads(threads_before, threads_after, thread_seconds, rps * thread_seconds, unit)


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
