#!/usr/bin/env python3
"""What a busy event loop does to relayed round trips on the same CPU, under each
`relay_pump_scheduling` policy.

    python3 bench/busy_loop_latency.py                       # 3 repeats, 0 / 1 / 8 TLS clients
    python3 bench/busy_loop_latency.py --tls-clients 8 --policies batch,normal --repeats 5

One wharf, pinned to CPU 1 as in `run.py`, serves the `proxy` plugin on two listeners in
front of a c-epoll backend: a plain one (the relay pump accepts and relays) and a TLS one
(its handshakes run on the event loop). `tlsgen` keeps N clients doing full RSA handshakes
on the TLS listener while `loadgen` sends ping-pong on the plain one at a fixed 2,000 round
trips a second (8 connections, each request timed from when it was due), both on CPU 0.
Prints each run and writes everything to `bench/results/latest-busy-loop.json`.

Under `batch` a woken pump never preempts the loop, so relayed bytes wait for the loop's
current work (a handshake's RSA signature is about a millisecond); under `normal` the pump
preempts it. `auto` (the default) resolves to `normal` here, since a listening channel
serves the TLS listener.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from servers import certificate  # noqa: E402


def trial(policy, tls_clients, rate):
    backend = run.Server("c-epoll-backend")
    cert, key, _ = certificate("rsa")
    scratch = tempfile.mkdtemp(prefix="wharf-busy-")
    config, ready = os.path.join(scratch, "wharf.yaml"), os.path.join(scratch, "ready.json")
    with open(config, "w") as f:
        f.write(f"relay_pump_scheduling: {policy}\nevent_loops: 1\nlog_level: warning\nplugins:\n"
                f"  proxy: {{path: proxy, config: {{upstreams: [\"127.0.0.1:{backend.port}\"]}}}}\nlisteners:\n"
                "  - {name: plain, address: 127.0.0.1, port: 0, plugin: proxy, backlog: 4096}\n"
                "  - {name: tls, address: 127.0.0.1, port: 0, plugin: proxy, backlog: 4096, "
                f"tls: {{certificate: {cert}, key: {key}}}}}\n")
    wharf = subprocess.Popen(run.pinned(run.setup.SERVER_CPU, [os.path.join(run.setup.RELEASE, "wharf"), "run",
                                                                "--config", config, "--ready-file", ready]),
                             stderr=subprocess.DEVNULL)
    handshakes = None
    try:
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if time.time() > deadline or wharf.poll() is not None:
                raise RuntimeError("wharf did not start")
            time.sleep(0.05)
        time.sleep(0.2)  # the file is written before it is complete on a slow start
        with open(ready) as f:
            ports = {listener["name"]: listener["port"] for listener in json.load(f)}
        if tls_clients:
            handshakes = subprocess.Popen(run.pinned(run.setup.CLIENT_CPU, [
                os.path.join(run.BENCH_BIN, "tlsgen"), "handshake", "--port", str(ports["tls"]),
                "--connections", str(tls_clients), "--size", "64", "--duration", "6", "--warmup", "1"]),
                stdout=subprocess.PIPE, text=True)
            time.sleep(1)
        out = subprocess.run(run.pinned(run.setup.CLIENT_CPU, [
            os.path.join(run.BENCH_BIN, "loadgen"), "pingpong", "--port", str(ports["plain"]), "--connections", "8",
            "--size", "64", "--duration", "4", "--warmup", "1", "--rate", str(rate)]),
            capture_output=True, text=True, timeout=60).stdout
        tls = json.loads(handshakes.communicate(timeout=60)[0].strip().splitlines()[-1]) if handshakes else None
    finally:
        if handshakes and handshakes.poll() is None:
            handshakes.kill()
        wharf.terminate()
        wharf.wait(timeout=15)
        backend.stop()
    relayed = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return {"policy": policy, "tls_clients": tls_clients, "handshakes_per_s": tls["rate"] if tls else 0,
            "rt_per_s": relayed["rps"], "p50_us": relayed["p50_us"], "p99_us": relayed["p99_us"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="batch,normal,auto")
    parser.add_argument("--tls-clients", default="0,1,8")
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run.build(skip_swift=False)
    results = []
    for clients in (int(n) for n in args.tls_clients.split(",")):
        for _ in range(args.repeats):
            for policy in args.policies.split(","):
                result = trial(policy, clients, args.rate)
                results.append(result)
                print(f"{policy:7s} {clients} TLS clients: {result['handshakes_per_s']:6.0f} handshakes/s; relayed "
                      f"{result['rt_per_s']:6.0f} rt/s, p50 {result['p50_us']:7.0f} µs, p99 {result['p99_us']:7.0f} µs",
                      flush=True)
    print("\nmedians: policy, TLS clients, handshakes/s, relayed p50 µs, p99 µs")
    for clients in sorted({r["tls_clients"] for r in results}):
        for policy in args.policies.split(","):
            mine = [r for r in results if r["policy"] == policy and r["tls_clients"] == clients]
            print(f"{policy:7s} {clients:2d} {statistics.median(r['handshakes_per_s'] for r in mine):7.0f} "
                  f"{statistics.median(r['p50_us'] for r in mine):8.0f} {statistics.median(r['p99_us'] for r in mine):8.0f}")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest-busy-loop.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "rate": args.rate, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
