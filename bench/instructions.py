#!/usr/bin/env python3
"""Instructions per ping-pong round trip (or, with --mode connect, per connection:
connect, one round trip, close), counted by valgrind (callgrind): stable on a noisy
machine, unlike timings. Each server runs twice under callgrind, for a short and a long
run; the difference divided by the extra round trips (connections) cancels start-up and
shutdown.

    python3 bench/instructions.py [--short 2000] [--long 12000] [--servers wharf,nio]
    python3 bench/instructions.py --mode connect --short 500 --long 3000
    python3 bench/instructions.py --release /tmp/old/.build/release   # another build
    python3 bench/instructions.py --servers wharf,wharf-swift   # the Swift line echo beside the C one
    python3 bench/instructions.py --servers wharf-proxy --mode connect   # a proxied connection
                                  # (the proxy plugin in front of echo_epoll; the pump thread counts)
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
LOADGEN = os.path.join(ROOT, ".build", "bench", "loadgen")
ECHO_EPOLL = os.path.join(ROOT, ".build", "bench", "echo_epoll")


def stripped_copy(scratch, name):
    """valgrind 3.19 cannot read Swift 6's DWARF 5; a copy without debug info (symbols
    kept) profiles fine. Plugins are copied beside wharf, where it looks for them."""
    target = os.path.join(scratch, name)
    shutil.copy2(os.path.join(RELEASE, name), target)
    subprocess.run(["strip", "-g", target], check=True)
    return target


KEEP = None


def total_instructions(server, round_trips, size, mode="pingpong"):
    scratch = tempfile.mkdtemp(prefix="wharf-instr-")
    plugin = {"wharf-swift": "swift_echo", "wharf-proxy": "proxy"}.get(server, "echo")
    wharf = server in ("wharf", "wharf-swift", "wharf-proxy")
    backend = None
    plugin_config = ""
    if server == "wharf-proxy":
        # The upstream runs outside callgrind: only the proxy's instructions are counted.
        backend = subprocess.Popen([ECHO_EPOLL, "0"], stdout=subprocess.PIPE, text=True)
        backend_port = int(backend.stdout.readline().split()[1])
        plugin_config = f", config: {{upstreams: [\"127.0.0.1:{backend_port}\"]}}"
    binary = stripped_copy(scratch, "wharf" if wharf else "nio-echo-baseline")
    if wharf:
        stripped_copy(scratch, f"lib{plugin}.so")
    out = os.path.join(scratch, "callgrind.out")
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if wharf:
        config, ready = os.path.join(scratch, "w.yaml"), os.path.join(scratch, "r.json")
        # One process: callgrind counts the serving code, not a supervisor beside it. (Builds
        # before the supervisor have no --single-process and call event loops `workers`.)
        help_text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
        supervised = "--single-process" in help_text
        with open(config, "w") as f:
            f.write(("event_loops" if supervised else "workers") + ": 1\nlog_level: warning\nplugins:\n"
                    f"  echo: {{path: {plugin}{plugin_config}}}\nlisteners:\n  - {{address: 127.0.0.1, port: 0, plugin: echo}}\n")
        process = subprocess.Popen(valgrind + [binary, "run"] + (["--single-process"] if supervised else [])
                                   + ["--config", config, "--ready-file", ready], stderr=subprocess.DEVNULL)
        while not os.path.exists(ready):
            time.sleep(0.1)
        with open(ready) as f:
            port = json.load(f)[0]["port"]
    else:
        process = subprocess.Popen(valgrind + [binary, "0", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(process.stdout.readline().split()[1])
    subprocess.run([LOADGEN, mode, "--port", str(port), "--connections", "1", "--size", str(size),
                    "--warmup", "0", "--count", str(round_trips)], check=True, capture_output=True)
    process.send_signal(2 if wharf else 15)
    process.wait(timeout=120)
    if backend:
        backend.terminate()
        backend.wait(timeout=10)
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as f:
            for line in f:
                match = re.match(r"(?:summary|totals): (\d+)", line)
                if match:
                    total = max(total, int(match.group(1)))
                    break
        if total:
            break
    if KEEP:
        os.makedirs(KEEP, exist_ok=True)
        for path in glob.glob(out + "*"):
            shutil.copy(path, os.path.join(KEEP, f"callgrind.{server}.{mode}.{round_trips}"))
    shutil.rmtree(scratch, ignore_errors=True)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=12000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--servers", default="wharf,nio")
    parser.add_argument("--mode", choices=["pingpong", "connect"], default="pingpong")
    parser.add_argument("--release", help="the release folder to measure (default: this checkout's)")
    parser.add_argument("--keep", help="copy callgrind's output files here (for callgrind_annotate)")
    args = parser.parse_args()
    global RELEASE, KEEP
    KEEP = args.keep
    if args.release:
        RELEASE = args.release
    results = {}
    for server in args.servers.split(","):
        short = total_instructions(server, args.short, args.size, args.mode)
        long = total_instructions(server, args.long, args.size, args.mode)
        results[server] = (long - short) / (args.long - args.short)
        unit = "round trip" if args.mode == "pingpong" else "connection"
        print(f"{server:11} {results[server]:10,.0f} instructions per {unit} (user space, server process)")
    if "wharf" in results and "nio" in results:
        print(f"wharf ÷ nio: {results['wharf'] / results['nio']:.3f}")
    if "wharf" in results and "wharf-swift" in results:
        print(f"wharf-swift ÷ wharf: {results['wharf-swift'] / results['wharf']:.3f}")


if __name__ == "__main__":
    main()
