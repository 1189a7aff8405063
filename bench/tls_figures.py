#!/usr/bin/env python3
"""Issue 14's TLS figures, side by side in one run (ROUNDS each, interleaved, medians):
amqp_load (librabbitmq, its TLS socket) publishing with confirms (window 256) and consuming
with acks (prefetch 256), N persistent 256 B messages, against warrend over plain TCP and
over TLS, and against a private RabbitMQ node over TLS with the same certificates; then TLS
connection set-up (handshake, login, channel) per second on both. Publishing is measured two
ways: as librabbitmq writes a publish (a write per frame: over TLS three records) and with
amqp_load's `--writes publish` (the publish in one write, over TLS one record, as clients that
buffer their writes send it: py-amqp, the Java and Go clients).

    /usr/bin/python3 bench/tls_figures.py [BUILD_DIR] [ROUNDS] [N]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
N = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000
os.environ.setdefault("WARREND", os.path.join(BUILD, "warrend"))

from harness import free_ports  # noqa: E402
from rabbit_node import RabbitNode  # noqa: E402
from tls_certs import Certificates  # noqa: E402

LOAD = os.path.join(BUILD, "bench", "amqp_load")


def load(port, mode, queue, ca=None, extra=()):
    if mode == "publish in one write":
        mode, extra = "publish", [*extra, "--writes", "publish"]
    args = [LOAD, "--port", str(port), "--mode", mode, "--queue", queue, "--messages", str(N), "--window", "256",
            "--prefetch", "256", *extra]
    if ca:
        args += ["--tls-ca", ca]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return float(out.split("rate=")[1].split()[0].rstrip("/s"))


def main():
    certs = Certificates()
    os.chmod(certs.dir, 0o755)
    for name in os.listdir(certs.dir):
        os.chmod(os.path.join(certs.dir, name), 0o644)  # RabbitMQ reads them as its own user
    rabbit = RabbitNode(plugins=(), config=(
        "listeners.ssl.default = 127.0.0.1:{tls_port}\n"
        f"ssl_options.cacertfile = {certs.ca}\nssl_options.certfile = {certs.server[0]}\n"
        f"ssl_options.keyfile = {certs.server[1]}\nssl_options.verify = verify_none\n"))
    data = tempfile.mkdtemp(prefix="warren-tls-bench-")
    port, tls_port = free_ports(2)
    warrend = subprocess.Popen([os.path.join(BUILD, "warrend"), "--port", str(port), "--tls-port", str(tls_port),
                                "--tls-cert", certs.server[0], "--tls-key", certs.server[1], "--management-port", "0",
                                "--prometheus-port", "0", "--data-dir", os.path.join(data, "d"), "--log-level",
                                "warning"], stdout=subprocess.PIPE, text=True)
    if not warrend.stdout.readline().startswith("ready "):  # its readiness line (README)
        raise SystemExit("warrend did not start")
    try:
        cases = {"warrend plain": (port, None), "warrend TLS": (tls_port, certs.ca),
                 "RabbitMQ TLS": (rabbit.tls_port, certs.ca)}
        # Each publish fills a queue of its own that the consume after it empties (so consuming
        # is measured twice per round).
        sequence = ["publish", "consume", "publish in one write", "consume"]
        rates = {(c, m): [] for c in cases for m in sequence}
        for r in range(ROUNDS):
            for case, (p, ca) in cases.items():
                for i, mode in enumerate(sequence):
                    queue = f"tls-bench-{r}-{case.replace(' ', '-')}-{i // 2}"
                    rates[(case, mode)].append(load(p, mode, queue, ca))
        for (case, mode), values in rates.items():
            print(f"{case:14} {mode:21} median {statistics.median(values):8.0f} msg/s  {[round(v) for v in values]}")
        for mode in ("publish", "publish in one write", "consume"):
            plain = statistics.median(rates[("warrend plain", mode)])
            tls = statistics.median(rates[("warrend TLS", mode)])
            rabbit_tls = statistics.median(rates[("RabbitMQ TLS", mode)])
            # Also per round (TLS against plain measured minutes apart, not a run apart).
            per_round = [1 - t / p for t, p in zip(rates[("warrend TLS", mode)], rates[("warrend plain", mode)])]
            print(f"{mode}: TLS costs warrend {1 - tls / plain:.0%} (goal < 25%; median of the rounds' own "
                  f"{statistics.median(per_round):.0%}); warrend TLS / RabbitMQ TLS {tls / rabbit_tls:.1f}x (goal >= 3x)")
        for case, (p, ca) in cases.items():
            if ca:
                r = statistics.median([load(p, "connect", "x", ca, ["--connections", "300"]) for _ in range(ROUNDS)])
                print(f"{case:14} TLS connections set up per second: {r:.0f}")
    finally:
        warrend.terminate()
        warrend.wait()
        warrend.stdout.close()
        rabbit.close()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(certs.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
