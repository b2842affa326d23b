"""The servers the benchmark runs side by side (bench/run.py): how each is configured,
started on a free loopback port (pinned to its CPU) and measured (RSS, CPU), and the
settings a run changes (a baseline build, extra listener keys, scaling)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import json

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


# wharf-proxy-channel: the same build and plugin with `pump_accept: false`, so listening
# channels accept and NIOSSL terminates TLS: TLS as every build before 2026-11-30 served it.
# wharf-proxy-boringssl: the same build with the relay pump's TLS on BoringSSL (`tls.library`),
# as builds between 2026-11-30 and 2026-12-01 served it; wharf-proxy takes the default (`auto`:
# the system's OpenSSL for an RSA certificate, BoringSSL for ECDSA).
WHARF_PROXIES = ("wharf-proxy", "wharf-proxy-base", "wharf-proxy-channel", "wharf-proxy-boringssl")
PROXIES = WHARF_PROXIES + ("haproxy", "nginx")
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
        if name in ("wharf", "wharf-base", "wharf-swift") + WHARF_PROXIES:
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
                        + (f", tls: {{certificate: {cert}, key: {key}"
                           + (", library: boringssl" if name == "wharf-proxy-boringssl" else "") + "}" if tls else "")
                        + (", pump_accept: false" if name == "wharf-proxy-channel" else "")
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
                        # nginx before 1.23.4 (Debian 12 has 1.22) offers TLS 1.2 at most by
                        # default: TLS 1.3 is asked for, as Wharf and HAProxy offer it.
                        + (f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; "
                           if tls else "")
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
