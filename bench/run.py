#!/usr/bin/env python3
"""Wharf's benchmark matrix: one command, servers side by side.

    python3 bench/run.py                 # full matrix, 3 repeats
    python3 bench/run.py --quick         # 1 repeat, shorter runs
    python3 bench/run.py --cases pingpong64,idle --servers wharf,nio

Servers: wharf (+ echo plugin), nio (raw SwiftNIO line echo, no plugin layer), c-epoll
(a minimal C epoll echo: the practical limit) and tornado (the seed's echo server, when
`tornado` is importable); and two proxies in front of a c-epoll backend: wharf-proxy
(wharf + the proxy plugin) and haproxy (TCP mode, when installed). Each server or proxy
runs with ONE event loop / thread pinned to CPU 1; the load generator (and a proxy's
c-epoll backend) are pinned to CPU 0. For every repeat the server order rotates, so drift in the
machine's load spreads over all servers. The table shows medians and ratios against raw
NIO; on a shared, noisy machine the ratios measured in one run are what count.
Results are also written as JSON (--out).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

import servers as setup  # the module; `servers` below is the list a run compares
# profile_proxy.py reaches these through this module too.
from servers import BENCH_BIN, CLIENT_CPU, PROXIES, ROOT, SERVER_CPU, Server, pinned, sh

PROXY_IDLE_CONNECTIONS = 4000

CASES = {
    "pingpong1": dict(mode="pingpong", connections=1, size=64, metric="rps", label="ping-pong 1 conn (rt/s)"),
    "pingpong64": dict(mode="pingpong", connections=64, size=64, metric="rps", label="ping-pong 64 conns (rt/s)"),
    "pingpong1000": dict(mode="pingpong", connections=1000, size=64, metric="rps", label="ping-pong 1000 conns (rt/s)"),
    "throughput": dict(mode="throughput", connections=16, size=16384, metric="mbps_in", label="throughput 16×16 KiB (MB/s echoed)"),
    "pingpong20": dict(mode="pingpong", connections=20, size=64, metric="rps", label="ping-pong 20 conns (rt/s)"),
    # Moderate, fixed load: the server is not saturated, so each round trip's latency shows.
    "rate20": dict(mode="pingpong", connections=20, size=64, rate=10000, metric="p99_us",
                   label="20 conns at 10k rt/s, p99 (µs)"),
    "connect": dict(mode="connect", connections=32, size=64, metric="cps", label="connect+1 rt+close (conn/s)"),
    "idle": dict(mode="idle", connections=10000, size=64, metric="kb_per_conn", label="RSS per idle conn (KB), 10k conns"),
    # TLS at the front (bench/tlsgen.c; certificates made at run time). For the proxies this
    # is TLS termination in front of a plain backend.
    "tls-handshake": dict(mode="handshake", tls="rsa", connections=32, size=64, metric="rate",
                          label="TLS full handshake + 1 rt, RSA-2048 (conn/s)"),
    "tls-handshake-ec": dict(mode="handshake", tls="ec", connections=32, size=64, metric="rate",
                             label="TLS full handshake + 1 rt, ECDSA P-256 (conn/s)"),
    "tls-resume": dict(mode="handshake", tls="rsa", connections=32, size=64, extra=["--resume"], metric="rate",
                       label="TLS 1.3 resumed handshake + 1 rt (conn/s)"),
    "tls-resume12": dict(mode="handshake", tls="rsa", connections=32, size=64, extra=["--resume", "--tls12"],
                         metric="rate", label="TLS 1.2 resumed handshake + 1 rt (conn/s)"),
    "tls-pingpong64": dict(mode="pingpong", tls="rsa", connections=64, size=64, metric="rate",
                           label="TLS ping-pong 64 conns (rt/s)"),
    "tls-idle": dict(mode="idle", tls="rsa", connections=2000, size=64, metric="kb_per_conn",
                     label="RSS per idle TLS conn (KB), 2k conns"),
    "tls-pingpong16k": dict(mode="pingpong", tls="rsa", connections=16, size=16384, metric="rate",
                            label="TLS 16 KiB ping-pong 16 conns (rt/s)"),
}


def build(skip_swift):
    os.makedirs(BENCH_BIN, exist_ok=True)
    for name, libraries in (("loadgen", []), ("echo_epoll", []), ("tlsgen", ["-lssl", "-lcrypto"])):
        try:
            sh(["cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", os.path.join(ROOT, "bench", name + ".c"),
                "-o", os.path.join(BENCH_BIN, name), *libraries])
        except subprocess.CalledProcessError:
            if name != "tlsgen":
                raise
            print("tlsgen did not build (apt-get install libssl-dev): the tls-… cases will fail", file=sys.stderr)
    if not skip_swift:
        sh(["swift", "build", "-c", "release", "--package-path", ROOT], stdout=subprocess.DEVNULL)


def loadgen(mode, port, connections, size, duration, warmup, extra=(), tool="loadgen"):
    """One run of a load generator (`loadgen`, or `tlsgen` for TLS cases); its JSON result."""
    command = pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, tool), mode, "--port", str(port),
                                  "--connections", str(connections), "--size", str(size),
                                  "--duration", str(duration), "--warmup", str(warmup), *extra])
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{tool} {mode} failed: {result.stderr}")
    return json.loads(lines[-1])


def measure_idle(server, connections, tool="loadgen"):
    """RSS growth per connection while `connections` idle clients are held open."""
    time.sleep(0.5)
    before = server.rss_kb()
    client = subprocess.Popen(pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, tool), "idle", "--port", str(server.port),
                                                  "--connections", str(connections), "--duration", "120"]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(client.stdout.readline())
    time.sleep(1.0)
    after = server.rss_kb()
    client.stdin.close()
    client.wait(timeout=60)
    return dict(kb_per_conn=(after - before) / connections, rss_before_kb=before, rss_after_kb=after,
                errors=ready.get("errors", 0))


def measure_churn(server, held, churn):
    """Hold `held` connections, then connect/round-trip/close `churn` more; RSS must stay flat."""
    client = subprocess.Popen(pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, "loadgen"), "idle", "--port", str(server.port),
                                                  "--connections", str(held), "--duration", "600"]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(client.stdout.readline())
    # One warm-up churn, so allocator pools and NIO's caches reach steady state first.
    loadgen("connect", server.port, 32, 64, 0, 0, ("--count", str(churn // 10)))
    rss_start = server.rss_kb()
    result = loadgen("connect", server.port, 32, 64, 0, 0, ("--count", str(churn)))
    rss_end = server.rss_kb()
    client.stdin.close()
    client.wait(timeout=60)
    return dict(held=held, churned=result["completed"], cps=result["cps"], errors=ready["errors"] + result["errors"],
                rss_start_kb=rss_start, rss_end_kb=rss_end, rss_growth_kb=rss_end - rss_start)


def cpu_ticks():
    """(steal, total) jiffies of the whole machine, from /proc/stat's "cpu" line."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields)


def run_case(case_name, server_name, args):
    case = CASES[case_name]
    server = Server(server_name, tls=case.get("tls"))
    tool = "tlsgen" if "tls" in case else "loadgen"
    try:
        if case["mode"] == "idle":
            connections = case["connections"] if not args.quick else min(case["connections"], 2000)
            # A proxied connection costs two descriptors; this machine's hard limit is 20,000.
            if server_name in PROXIES:
                connections = min(connections, PROXY_IDLE_CONNECTIONS)
            return measure_idle(server, connections, tool=tool)
        extra = [*case.get("extra", []), *(["--rate", str(case["rate"])] if "rate" in case else [])]
        cpu_before = server.cpu_seconds()
        steal_before, total_before = cpu_ticks()
        result = loadgen(case["mode"], server.port, case["connections"], case["size"], args.duration, args.warmup,
                         extra, tool=tool)
        # Time the hypervisor gave to other guests: on a VM, the hours when it is high are
        # the hours whose figures cannot be compared with others.
        steal_after, total_after = cpu_ticks()
        result["steal_pct"] = round(100 * (steal_after - steal_before) / max(1, total_after - total_before), 1)
        if result.get("total"):
            # Warm-up included on both sides: CPU over the whole run per operation of the whole run.
            result["cpu_us_per_op"] = round((server.cpu_seconds() - cpu_before) * 1e6 / result["total"], 2)
        return result
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--servers", default="wharf,nio,c-epoll,tornado,wharf-proxy,haproxy,nginx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 s runs, 2000 idle conns")
    parser.add_argument("--churn", type=int, default=100000, help="connections churned in the leak check (0: skip)")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    parser.add_argument("--baseline", help="another build's release folder, served as wharf-base")
    parser.add_argument("--listener", default="", help='extra keys for wharf\'s listener, e.g. "idle_timeout_ms: 0"')
    parser.add_argument("--top", default="", help='an extra top-level line for wharf\'s config, e.g. '
                        '"access_log: {path: /tmp/access.log}"')
    parser.add_argument("--unpinned", action="store_true", help="pin nothing (scaling runs)")
    parser.add_argument("--processes", type=int, default=1, help="wharf's worker processes")
    parser.add_argument("--loops", type=int, default=1, help="wharf's event loops per process")
    parser.add_argument("--threads", type=int, default=1, help="HAProxy's nbthread, nginx's worker_processes")
    args = parser.parse_args()
    setup.UNPINNED, setup.PROCESSES, setup.LOOPS = args.unpinned, args.processes, args.loops
    setup.THREADS, setup.BASELINE = args.threads, args.baseline
    setup.LISTENER_EXTRA, setup.TOP_EXTRA = args.listener, args.top
    if setup.BASELINE and not any(name.endswith("-base") for name in args.servers.split(",")):
        args.servers = "wharf-base," + args.servers
    if args.quick:
        args.repeats, args.duration, args.churn = 1, 2, min(args.churn, 20000)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    build(args.no_build)

    servers = args.servers.split(",")
    if "tornado" in servers:
        try:
            import tornado  # noqa: F401
        except ImportError:
            print("tornado is not installed (pip install tornado): skipping it", file=sys.stderr)
            servers.remove("tornado")
    for proxy, package in (("haproxy", "haproxy"), ("nginx", "nginx libnginx-mod-stream")):
        if proxy in servers and not shutil.which(proxy):
            print(f"{proxy} is not installed (apt-get install {package}): skipping it", file=sys.stderr)
            servers.remove(proxy)
    cases = args.cases.split(",")
    samples = {case: {server: [] for server in servers} for case in cases}
    cpu = {case: {server: [] for server in servers} for case in cases}
    stolen = []
    for repeat in range(args.repeats):
        for case in cases:
            order = servers[repeat % len(servers):] + servers[:repeat % len(servers)]
            for server in order:
                if case == "idle" and server == "tornado" and repeat > 0:
                    continue
                result = run_case(case, server, args)
                value = result[CASES[case]["metric"]]
                samples[case][server].append(value)
                cpu[case][server].append(result.get("cpu_us_per_op"))
                if result.get("steal_pct", 0) > 5:
                    stolen.append(f"{case} {server} run {repeat + 1}: {result['steal_pct']}%")
                print(f"[{repeat + 1}/{args.repeats}] {case:13} {server:8} {value:12.1f}  {json.dumps(result)}",
                      file=sys.stderr, flush=True)

    churn = {}
    if args.churn:
        for server in ("wharf", "nio"):
            if server in servers:
                instance = Server(server)
                try:
                    churn[server] = measure_churn(instance, 10000 if not args.quick else 2000, args.churn)
                finally:
                    instance.stop()
                print(f"churn {server}: {json.dumps(churn[server])}", file=sys.stderr, flush=True)

    medians = {case: {server: statistics.median(values) for server, values in by_server.items() if values}
               for case, by_server in samples.items()}
    cpu_medians = {case: {server: statistics.median([v for v in values if v is not None])
                          for server, values in by_server.items() if any(v is not None for v in values)}
                   for case, by_server in cpu.items()}

    def ratio(case, numerator, denominator):
        row = medians[case]
        if not row.get(numerator) or not row.get(denominator):
            return "–"
        value = row[numerator] / row[denominator]
        # Always "Wharf's figure as a multiple of theirs"; for latencies, lower is better.
        return f"{value:.2f}×"

    comparisons = [(a, b) for a, b in (("wharf", "nio"), ("wharf-proxy", "haproxy"), ("wharf-proxy", "nginx"))
                   if a in servers and b in servers]
    header = "| case | " + " | ".join(servers) + "".join(f" | {a} ÷ {b}" for a, b in comparisons) + " |"
    lines = [header, "|" + "---|" * (len(servers) + len(comparisons) + 1)]
    for case in cases:
        row = medians[case]
        cells = []
        for server in servers:
            values = samples[case][server]
            if not values:
                cells.append("–")
                continue
            cell = f"{row[server]:,.1f}"
            if len(values) > 1:
                cell += f" ({min(values):,.0f}–{max(values):,.0f})"
            cells.append(cell)
        lines.append(f"| {CASES[case]['label']} | " + " | ".join(cells)
                     + "".join(f" | {ratio(case, a, b)}" for a, b in comparisons) + " |")
    lines.append("\nServer CPU per operation (µs, user + system, medians; the proxies' backend not counted):\n")
    lines.append("| case | " + " | ".join(servers) + " |")
    lines.append("|" + "---|" * (len(servers) + 1))
    for case in cases:
        if cpu_medians[case]:
            lines.append(f"| {CASES[case]['label']} | "
                         + " | ".join(f"{cpu_medians[case][s]:.1f}" if s in cpu_medians[case] else "–" for s in servers)
                         + " |")
    if "tornado" in servers and "pingpong64" in medians and medians["pingpong64"].get("tornado"):
        lines.append(f"\nwharf ÷ tornado, ping-pong 64 conns: "
                     f"{medians['pingpong64']['wharf'] / medians['pingpong64']['tornado']:.2f}×")
    for server, result in churn.items():
        lines.append(f"\nchurn {server}: {result['held']:,} held + {result['churned']:,} churned, "
                     f"{result['errors']} errors, RSS {result['rss_start_kb']:,} → {result['rss_end_kb']:,} KB")
    if stolen:
        lines.append(f"\nhypervisor steal above 5% of the machine in {len(stolen)} runs (compare those with care): "
                     + "; ".join(stolen))
    table = "\n".join(lines)
    print(table)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), cores=os.cpu_count(), repeats=args.repeats,
                       duration=args.duration, server_cpu=None if setup.UNPINNED else SERVER_CPU,
                       client_cpu=None if setup.UNPINNED else CLIENT_CPU, processes=setup.PROCESSES,
                       loops=setup.LOOPS, threads=setup.THREADS,
                       samples=samples, medians=medians, cpu_us_per_op=cpu, cpu_medians=cpu_medians, churn=churn,
                       stolen=stolen, table=table), f, indent=1)


if __name__ == "__main__":
    main()
