"""A private RabbitMQ node for tests that need one of their own (to stop, start and fill):
Debian's RabbitMQ 3.10 from its scripts directory, as root, in a temporary directory, on
free loopback ports, with its own node name and Erlang cookie, so it never meets a RabbitMQ
the machine runs (on 5672) or another test's node.

scripts/setup.sh unpacks Debian's rabbitmq-server package under WARREN_RABBITMQ_ROOT
(without installing it, which would start a service on 5672); an installed package is used
as well.
"""
import os
import shutil
import subprocess
import tempfile
import uuid

from harness import free_ports

UNPACKED = os.environ.get("WARREN_RABBITMQ_ROOT", "/usr/local/lib/warren-test-rabbitmq")
CANDIDATES = [os.path.join(UNPACKED, "usr/lib/rabbitmq/bin"), "/usr/lib/rabbitmq/bin"]


def scripts_dir():
    """Where rabbitmq-server and rabbitmqctl are, or None."""
    for d in CANDIDATES:
        if os.path.exists(os.path.join(d, "rabbitmq-server")) and shutil.which("erl"):
            return d
    return None


class RabbitNode:
    def __init__(self, plugins=("rabbitmq_management",), config=""):
        self.bin = scripts_dir()
        if not self.bin:
            raise RuntimeError("no RabbitMQ: run scripts/setup.sh")
        self.dir = tempfile.mkdtemp(prefix="warren-rabbit-")
        os.chmod(self.dir, 0o755)
        self.port, self.dist_port, self.mgmt_port, self.tls_port = free_ports(4)
        self.name = f"warren-{uuid.uuid4().hex[:8]}@localhost"
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[" + ",".join(plugins) + "].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                    f"management.tcp.port = {self.mgmt_port}\n"
                    f"management.tcp.ip = 127.0.0.1\n"
                    "loopback_users = none\n"
                    "log.console = false\n" + config.replace("{tls_port}", str(self.tls_port)))
        self.env = dict(os.environ, HOME=self.dir, RABBITMQ_NODENAME=self.name,
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
                        RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"))
        self.proc = None
        self.start()

    def ctl(self, *args, timeout=120):
        return subprocess.run([os.path.join(self.bin, "rabbitmqctl"), "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self):
        """Starts the node and returns once it serves AMQP (rabbitmqctl await_startup)."""
        self.proc = subprocess.Popen([os.path.join(self.bin, "rabbitmq-server")], env=self.env, cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # wait: the node writes its pid file once it runs, await_startup then waits for boot.
        done = subprocess.run([os.path.join(self.bin, "rabbitmqctl"), "-n", self.name, "wait", "--timeout", "120",
                               self.env["RABBITMQ_PID_FILE"]], env=self.env, capture_output=True, text=True,
                              timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"RabbitMQ did not start: {done.stdout} {done.stderr}")

    def stop(self):
        """Stops the node (its data stays, for start())."""
        if self.proc and self.proc.poll() is None:
            self.ctl("stop", self.env["RABBITMQ_PID_FILE"])
            self.proc.wait(timeout=120)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
