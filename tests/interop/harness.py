"""The broker an interop test talks to.

With AMQP_PORT set, an external broker (RabbitMQ, to check that the expectations are
RabbitMQ's): AMQP_RESTART is the shell command that restarts it. Otherwise a warrend
(path in WARREND) started here with its own data directory, on loopback ports taken below
the system's ephemeral range (free_ports), kept across restarts; a port another test takes
first is retried with others.
"""
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid


def start_warrend(*args, **popen):
    """Starts warrend with --port 0 (and no HTTP listeners unless args ask for them) and
    returns (process, port) once it listens."""
    popen.setdefault("text", True)
    http = [arg for flag in ("--management-port", "--prometheus-port") if flag not in args for arg in (flag, "0")]
    proc = subprocess.Popen([os.environ["WARREND"], "--port", "0", *http, *args], stdout=subprocess.PIPE, **popen)
    line = proc.stdout.readline()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"warrend did not print its port: {line!r}")
    return proc, int(line.split()[1])


def wait_until_ready(proc):
    """Reads warrend's standard output (a text pipe) up to its readiness line ("ready amqp=N
    ...", README "Readiness") and returns its ports by listener; raises if warrend exits
    first."""
    for line in proc.stdout:
        if line.startswith("ready "):
            return {name: int(port) for name, port in (field.split("=", 1) for field in line.split()[1:])}
    proc.wait()
    raise RuntimeError(f"warrend exited ({proc.returncode}) before it was ready")


def start_logged_warrend(args, log):
    """Starts warrend with these arguments, its log appended to the open file `log` (a file,
    not a pipe: a pipe nobody reads would stall it), and returns the process once it is ready
    (stdout stays a pipe: wait_until_ready read it). Raises with what this run logged if it
    exits first."""
    seen = log.tell()
    proc = subprocess.Popen([os.environ["WARREND"], *args], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_until_ready(proc)
    except RuntimeError as e:
        proc.stdout.close()
        with open(log.name) as f:
            f.seek(seen)
            raise RuntimeError(f"{e}:\n{f.read()}") from None
    return proc


def http_call(port, method, path, body=None, auth=("guest", "guest"), raw=None):
    """(status, parsed JSON or None) of one request to a management API on this port."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"content-type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    return status, json.loads(text) if text else None


def _first_ephemeral_port():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(count):
    """Ports nobody listens on just now, all different, taken below the range the system
    hands out to outgoing connections: a broker restarted on its old ports must find them
    free, and any client connecting meanwhile could be given one from that range. (Another
    test may still take one before it is used: whoever starts a server on it retries with
    others if it is taken.)"""
    top = _first_ephemeral_port()
    bottom = max(1024, top - 12000)
    sockets = []
    try:
        while len(sockets) < count:  # held together, so that none is picked twice
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(bottom, top)))
            except OSError:  # in use, or lingering from a closed connection
                s.close()
                continue
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port():
    return free_ports(1)[0]


def unique(prefix):
    """A name no other test (or earlier run against a shared broker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Broker:
    def __init__(self):
        self.external = "AMQP_PORT" in os.environ
        if self.external:
            self.port = int(os.environ["AMQP_PORT"])
            self.mgmt_port = int(os.environ.get("MGMT_PORT", "15672"))
            self.prometheus_port = int(os.environ.get("PROMETHEUS_PORT", "15692"))
            self.restart_command = os.environ.get("AMQP_RESTART")
            return
        self.warrend = os.environ["WARREND"]
        self.dir = tempfile.mkdtemp(prefix="warren-interop-")
        self.port = None  # chosen by the first start (free_ports), kept across restarts
        self.mgmt_port = None  # the HTTP listeners', likewise
        self.prometheus_port = None
        self.proc = None
        self.start()

    def start(self):
        restarting = self.mgmt_port is not None  # then every port stays what it was
        for _ in range(5):  # a free port may be taken before warrend binds it: then others
            if not restarting:
                self.port, mgmt_port, prometheus_port = free_ports(3)
            else:
                mgmt_port, prometheus_port = self.mgmt_port, self.prometheus_port
            if self._start(mgmt_port, prometheus_port):
                self.mgmt_port, self.prometheus_port = mgmt_port, prometheus_port
                return
            if restarting or not any("cannot listen" in line for line in self.log):
                break
        raise RuntimeError("warrend exited before it was ready:\n" + "".join(self.log))

    def _start(self, mgmt_port, prometheus_port):
        self.proc = subprocess.Popen(
            [self.warrend, "--port", str(self.port), "--data-dir", self.dir, "--management-port", str(mgmt_port),
             "--prometheus-port", str(prometheus_port),
             "--durability", "nosync", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # the log says when it is ready
        self.log = []
        for line in self.proc.stderr:  # wait for the event, not for time
            self.log.append(line)
            if "warrend ready" in line:
                break
        else:
            self.proc.wait()
            self.proc.stderr.close()
            return False
        # Keep reading its log so it never blocks on a full pipe; shown if it fails.
        self._drain = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self._drain.start()
        return True

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            # A client that does not answer connection.close holds a graceful stop for 5 s
            # (test_py_amqp's restart keeps one); a loaded machine needs the rest.
            self.proc.wait(timeout=60)
            self._drain.join(timeout=10)
            self.proc.stderr.close()
            # A clean shutdown is part of the test (sanitizer builds fail it on any error).
            if self.proc.returncode != 0:
                raise RuntimeError(f"warrend exited with status {self.proc.returncode}:\n"
                                   + "".join(self.log[-60:]))

    def restart(self):
        """Restart the broker; durable state must survive."""
        if self.external:
            if not self.restart_command:
                raise RuntimeError("set AMQP_RESTART to restart the external broker")
            subprocess.run(self.restart_command, shell=True, check=True)
            self.wait_until_listening()
            return
        self.stop()
        self.start()

    def wait_until_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        if not self.external:
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)


# One broker per test module: each module imports these two as its module fixtures.
_current = None


def setUpModule():
    global _current
    _current = Broker()


def tearDownModule():
    _current.close()


def broker():
    """The broker of the running test module."""
    return _current
