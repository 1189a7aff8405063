"""pytest fixtures that give a test session a real Warren broker instead of a RabbitMQ.

Enable the plugin with ``-p pytest_warren`` (this directory on PYTHONPATH), or with
``pytest_plugins = ["pytest_warren"]`` in a conftest.py, then ask for the fixtures:

    def test_order_is_queued(warren_url):
        conn = pika.BlockingConnection(pika.URLParameters(warren_url))
        ...

    @pytest.fixture
    def celery_config(warren_url):          # Celery's own pytest plugin
        return {"broker_url": warren_url}

Fixtures (both session-scoped: one warrend for the whole session, started on first use):
    warren_server  the running broker: .host, .port, .url, .pid
    warren_url     its AMQP URL, "amqp://guest:guest@127.0.0.1:PORT/%2F"

warrend runs with in-memory durability (nothing is written to disk, nothing survives the
session) on a free loopback port. Which warrend: --warrend PATH, else $WARREND, else the
one on PATH. Tests share the broker, so each should use queue names of its own.
"""
import os
import shutil
import signal
import subprocess
import threading

import pytest

READY_TIMEOUT_S = 30


def pytest_addoption(parser):
    parser.addoption("--warrend", default=None, help="the warrend binary for the warren_server fixture")


class WarrenServer:
    host = "127.0.0.1"

    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--bind", self.host, "--durability", "memory", "--management-port", "0",
             "--prometheus-port", "0", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.port = self._wait_until_ready()
        self.url = f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def _wait_until_ready(self):
        # warrend's readiness line (README, "Readiness"): "ready amqp=PORT ...".
        ready = {}

        def read_until_ready():
            for line in self.proc.stdout:
                if line.startswith("ready "):
                    ready.update(part.split("=", 1) for part in line.split()[1:])
                    return

        reader = threading.Thread(target=read_until_ready, daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT_S)
        if "amqp" in ready:
            return int(ready["amqp"])
        if not reader.is_alive():  # its output ended: warrend exited
            self.proc.wait()
            raise RuntimeError(f"warrend exited ({self.proc.returncode}): {self.proc.stderr.read()}")
        self.stop()
        raise RuntimeError(f"warrend was not ready within {READY_TIMEOUT_S} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _find_warrend(config):
    binary = config.getoption("--warrend") or os.environ.get("WARREND") or shutil.which("warrend")
    if not binary:
        raise pytest.UsageError("pytest_warren: no warrend (give --warrend PATH or set WARREND)")
    return binary


@pytest.fixture(scope="session")
def warren_server(request):
    server = WarrenServer(_find_warrend(request.config))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def warren_url(warren_server):
    return warren_server.url
