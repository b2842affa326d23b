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
import socket
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_BIN = os.path.join(ROOT, ".build", "bench")
RELEASE = os.path.join(ROOT, ".build", "release")
# --baseline DIR: another build's release folder (e.g. a worktree of an older commit),
# served as "wharf-base" beside "wharf" (and "wharf-proxy-base" beside "wharf-proxy", when
# named in --servers), for before/after comparisons in one run.
BASELINE = None
# --listener "k: v, ...": extra keys for wharf's bench listener (e.g. to price one feature).
LISTENER_EXTRA = ""
# --top "k: v": an extra top-level config line for wharf (not wharf-base), e.g. an access log.
TOP_EXTRA = ""
SERVER_CPU, CLIENT_CPU = "1", "0"
# Scaling runs (--unpinned, --processes, --loops, --threads): nothing pinned; wharf with that
# many worker processes and event loops each, HAProxy with nbthread and nginx with
# worker_processes set to --threads.
UNPINNED = False
PROCESSES, LOOPS, THREADS = 1, 1, 1

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


CERTS = os.path.join(BENCH_BIN, "certs")


def certificate(kind):
    """(certificate, key, combined PEM) for kind "rsa" (RSA-2048) or "ec" (ECDSA P-256), made once."""
    os.makedirs(CERTS, exist_ok=True)
    cert, key, both = (os.path.join(CERTS, f"{kind}.{ext}") for ext in ("pem", "key", "both.pem"))
    if not os.path.exists(both):
        algorithm = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        sh(["openssl", "req", "-x509", *algorithm, "-nodes", "-keyout", key, "-out", cert, "-days", "30",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"], stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        with open(both, "w") as f:
            f.write(open(cert).read() + open(key).read())
    return cert, key, both


def sh(command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)


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


def pinned(cpu, command):
    return (["taskset", "-c", cpu] if shutil.which("taskset") and not UNPINNED else []) + command


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def supervised(release):
    """Whether that build runs a supervisor with worker processes (it has --single-process)."""
    help_text = subprocess.run([os.path.join(release, "wharf"), "run", "--help"], capture_output=True, text=True)
    return "--single-process" in help_text.stdout


def children(pid):
    """The child processes of pid (any of its threads may have started them)."""
    found = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as listing:
                found += [int(child) for child in listing.read().split()]
        except OSError:
            pass
    return found


PROXIES = ("wharf-proxy", "wharf-proxy-base", "haproxy", "nginx")
PROXY_IDLE_CONNECTIONS = 4000


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, what):
    deadline = time.time() + 20
    while time.time() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


class Server:
    """A server process bound to a free loopback port; proxies get a c-epoll backend."""

    def __init__(self, name, tls=None):
        """tls: "rsa" or "ec" to terminate TLS at the front with that kind of certificate."""
        self.name = name
        self.scratch = tempfile.mkdtemp(prefix="wharf-bench-")
        self.backend = Server("c-epoll-backend") if name in PROXIES else None
        cert, key, both = certificate(tls) if tls else (None, None, None)
        if name in ("wharf", "wharf-base", "wharf-proxy", "wharf-proxy-base", "wharf-swift"):
            if name in ("wharf", "wharf-base"):
                plugin = "echo: {path: echo, config: {max_bytes: 1048576}}"
            elif name == "wharf-swift":
                # The same line echo as a Swift async plugin (plugins/swift_echo).
                plugin = "echo: {path: swift_echo, config: {max_bytes: 1048576}}"
            else:
                plugin = f"echo: {{path: proxy, config: {{upstreams: [\"127.0.0.1:{self.backend.port}\"]}}}}"
            config = os.path.join(self.scratch, "wharf.yaml")
            ready = os.path.join(self.scratch, "ready.json")
            base = name.endswith("-base")
            release = BASELINE if base else RELEASE
            # Builds before the supervisor (2026-11-30) called event loops `workers`.
            loops_key = "event_loops" if supervised(release) else "workers"
            with open(config, "w") as f:
                top = TOP_EXTRA + "\n" if TOP_EXTRA and not base else ""
                processes = f"processes: {PROCESSES}\n" if supervised(release) else ""
                f.write(f"{processes}{loops_key}: {LOOPS}\nlog_level: warning\n{top}plugins:\n  {plugin}\n"
                        "listeners:\n  - {address: 127.0.0.1, port: 0, plugin: echo, backlog: 4096"
                        + (f", tls: {{certificate: {cert}, key: {key}}}" if tls else "")
                        + (", " + LISTENER_EXTRA if LISTENER_EXTRA and not base else "") + "}\n")
            self.process = subprocess.Popen(pinned(SERVER_CPU, [os.path.join(release, "wharf"), "run", "--config", config,
                                                                "--ready-file", ready]), stderr=subprocess.DEVNULL)
            deadline = time.time() + 20
            while not os.path.exists(ready):
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("wharf did not start")
                time.sleep(0.02)
            with open(ready) as f:
                self.port = json.load(f)[0]["port"]
            return
        if name == "haproxy":
            # TCP mode, one thread, defaults otherwise (no splicing), as an operator would start it.
            self.port = free_port()
            config = os.path.join(self.scratch, "haproxy.cfg")
            with open(config, "w") as f:
                f.write(f"global\n  nbthread {THREADS}\n  maxconn 9000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                        f"  timeout client 300s\n  timeout server 300s\n\nfrontend front\n"
                        f"  bind 127.0.0.1:{self.port} backlog 4096" + (f" ssl crt {both}" if tls else "")
                        + "\n  default_backend echo\n\n"
                        f"backend echo\n  server c_epoll 127.0.0.1:{self.backend.port}\n")
            self.process = subprocess.Popen(pinned(SERVER_CPU, [shutil.which("haproxy"), "-db", "-f", config]),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(self.port, self.process, "haproxy")
            return
        if name == "nginx":
            # The stream module, one worker process, defaults otherwise, as an operator would start it.
            self.port = free_port()
            config = os.path.join(self.scratch, "nginx.conf")
            module = "/usr/lib/nginx/modules/ngx_stream_module.so"
            with open(config, "w") as f:
                f.write((f"load_module {module};\n" if os.path.exists(module) else "")
                        + f"daemon off;\nworker_processes {THREADS};\nworker_rlimit_nofile 20000;\n"
                        f"pid {self.scratch}/nginx.pid;\nerror_log {self.scratch}/error.log error;\n"
                        f"events {{ worker_connections 20000; }}\n"
                        f"stream {{ server {{ listen 127.0.0.1:{self.port} backlog=4096{' ssl' if tls else ''}; "
                        + (f"ssl_certificate {cert}; ssl_certificate_key {key}; " if tls else "")
                        + f"proxy_pass 127.0.0.1:{self.backend.port}; }} }}\n")
            self.process = subprocess.Popen(pinned(SERVER_CPU, [shutil.which("nginx"), "-c", config, "-p", self.scratch]),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(self.port, self.process, "nginx")
            return
        if name == "nio":
            command = [os.path.join(RELEASE, "nio-echo-baseline"), "0", "1"]
        elif name == "c-epoll":
            command = [os.path.join(BENCH_BIN, "echo_epoll"), "0"]
        elif name == "c-epoll-backend":
            self.process = subprocess.Popen(pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, "echo_epoll"), "0"]),
                                            stdout=subprocess.PIPE, text=True)
            self.port = int(self.process.stdout.readline().split()[1])
            return
        elif name == "tornado":
            command = [sys.executable, os.path.join(ROOT, "bench", "tornado_echo.py"), "0"]
        else:
            raise ValueError(name)
        self.process = subprocess.Popen(pinned(SERVER_CPU, command), stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"{name} did not start: {line}")
        self.port = int(line[1])

    def cpu_seconds(self):
        """User + system CPU of the server and its child processes (wharf's workers, nginx's)."""
        total = 0
        for pid in [self.pid] + children(self.pid):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    @property
    def pid(self):
        return self.process.pid

    def rss_kb(self):
        # taskset execs the server, so the pid is the server's own; wharf's supervisor
        # counts with its worker processes.
        return rss_kb(self.pid) + sum(rss_kb(child) for child in children(self.pid))

    def stop(self):
        if self.backend:
            self.backend.stop()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def loadgen(mode, port, connections, size, duration, warmup, extra=()):
    command = pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, "loadgen"), mode, "--port", str(port),
                                  "--connections", str(connections), "--size", str(size),
                                  "--duration", str(duration), "--warmup", str(warmup), *extra])
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen {mode} failed: {result.stderr}")
    return json.loads(lines[-1])


def tlsgen(case, server, args):
    command = pinned(CLIENT_CPU, [os.path.join(BENCH_BIN, "tlsgen"), case["mode"], "--port", str(server.port),
                                  "--connections", str(case["connections"]), "--size", str(case["size"]),
                                  "--duration", str(args.duration), "--warmup", str(args.warmup), *case.get("extra", [])])
    cpu_before = server.cpu_seconds()
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + args.warmup + 120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"tlsgen {case['mode']} failed: {result.stderr}")
    measured = json.loads(lines[-1])
    if measured.get("total"):
        measured["cpu_us_per_op"] = round((server.cpu_seconds() - cpu_before) * 1e6 / measured["total"], 2)
    return measured


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


def run_case(case_name, server_name, args):
    case = CASES[case_name]
    server = Server(server_name, tls=case.get("tls"))
    try:
        if "tls" in case:
            if case["mode"] == "idle":
                return measure_idle(server, case["connections"], tool="tlsgen")
            return tlsgen(case, server, args)
        if case["mode"] == "idle":
            connections = case["connections"] if not args.quick else 2000
            # A proxied connection costs two descriptors; this machine's hard limit is 20,000.
            if server_name in PROXIES:
                connections = min(connections, PROXY_IDLE_CONNECTIONS)
            return measure_idle(server, connections)
        extra = ("--rate", str(case["rate"])) if "rate" in case else ()
        cpu_before = server.cpu_seconds()
        result = loadgen(case["mode"], server.port, case["connections"], case["size"], args.duration, args.warmup,
                         extra)
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
    global BASELINE, LISTENER_EXTRA, TOP_EXTRA, UNPINNED, PROCESSES, LOOPS, THREADS
    UNPINNED, PROCESSES, LOOPS, THREADS = args.unpinned, args.processes, args.loops, args.threads
    BASELINE = args.baseline
    LISTENER_EXTRA = args.listener
    TOP_EXTRA = args.top
    if BASELINE and not any(name.endswith("-base") for name in args.servers.split(",")):
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
    table = "\n".join(lines)
    print(table)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), cores=os.cpu_count(), repeats=args.repeats,
                       duration=args.duration, server_cpu=None if UNPINNED else SERVER_CPU,
                       client_cpu=None if UNPINNED else CLIENT_CPU, processes=PROCESSES, loops=LOOPS, threads=THREADS,
                       samples=samples, medians=medians, cpu_us_per_op=cpu, cpu_medians=cpu_medians, churn=churn,
                       table=table), f, indent=1)


if __name__ == "__main__":
    main()
