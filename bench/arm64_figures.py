"""warrend's size and idle memory on arm64, under qemu-user (scripts/arm64.sh runs it):

    /usr/bin/python3 bench/arm64_figures.py build-arm64/warrend

Idle RSS is read once warrend has printed its readiness line and one client has connected
and gone. qemu-user's own memory is in the process's RSS too, so a trivial arm64 program
(pause() after printing, dynamically linked like warrend) under the same qemu is measured
as the baseline, and the difference is reported as warrend's share."""
import os
import signal
import socket
import subprocess
import sys
import tempfile


def rss_kib(pid):
    """(VmRSS, RssAnon) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


def idle_rss(cmd, ready_prefix, connect=False):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = None
        for line in proc.stdout:
            if line.startswith(ready_prefix):
                fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
                port = int(fields.get("amqp", 0))
                break
        if connect and port:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                s.recv(4096)  # connection.start: the connection is set up on both sides
        return rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main(warrend):
    qemu = ["qemu-aarch64"]
    size = os.path.getsize(warrend)
    with tempfile.TemporaryDirectory() as d:
        stripped = os.path.join(d, "warrend")
        subprocess.run(["aarch64-linux-gnu-strip", "-o", stripped, warrend], check=True)
        stripped_size = os.path.getsize(stripped)
        baseline_src = os.path.join(d, "idle.c")
        with open(baseline_src, "w") as f:
            f.write('#include <stdio.h>\n#include <unistd.h>\n'
                    'int main(void) { puts("ready baseline"); fflush(stdout); pause(); return 0; }\n')
        baseline = os.path.join(d, "idle")
        subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-o", baseline, baseline_src], check=True)
        args = ["--port", "0", "--bind", "127.0.0.1", "--durability", "memory", "--management-port", "0",
                "--prometheus-port", "0", "--log-level", "warning"]
        runs = [idle_rss(qemu + [warrend] + args, "ready ", connect=True) for _ in range(3)]
        bases = [idle_rss(qemu + [baseline], "ready ") for _ in range(3)]
    (total, anon), (base_total, base_anon) = sorted(runs)[1], sorted(bases)[1]
    print(f"arm64 warrend: {size / 1e6:.1f} MB ({stripped_size / 1e6:.1f} MB stripped); idle under qemu-aarch64: "
          f"VmRSS {total / 1024:.1f} MiB (RssAnon {anon / 1024:.1f}), a trivial program under the same qemu "
          f"{base_total / 1024:.1f} MiB ({base_anon / 1024:.1f}): warrend's share {(total - base_total) / 1024:.1f} MiB "
          f"(RssAnon {(anon - base_anon) / 1024:.1f}); medians of 3")

if __name__ == "__main__":
    main(sys.argv[1])
