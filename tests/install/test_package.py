"""The Debian package (cpack -G DEB) on this machine: dpkg installs it, warrend starts as the
warren user with the installed configuration and tells systemd it is ready (sd_notify, read
here from a NOTIFY_SOCKET as systemd would), serves AMQP, stops cleanly, and the package
removes and purges without leaving anything behind.

    WARREN_DEB=build/warren_0.1.0_amd64.deb /usr/bin/python3 -m unittest -v tests/install/test_package.py

Needs root (it installs a package); the steps run in order (test_1_..., test_2_...)."""
import glob
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import unittest

import pika

DEB = os.environ.get("WARREN_DEB", "")
CONF = "/etc/warren/warren.conf"
UNIT = "/usr/lib/systemd/system/warren.service"


def run(*cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.geteuid() == 0 and DEB, "needs root and WARREN_DEB")
class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if subprocess.run(["dpkg", "-s", "warren"], capture_output=True).returncode == 0:
            raise unittest.SkipTest("a warren package is installed already; not touching it")
        run("dpkg", "-i", DEB)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["dpkg", "--purge", "warren"], capture_output=True)

    def test_1_files_user_and_permissions(self):
        for path in ["/usr/bin/warrend", "/usr/bin/warrenctl", CONF, UNIT]:
            self.assertTrue(os.path.exists(path), path)
        user = pwd.getpwnam("warren")
        self.assertLess(user.pw_uid, 1000, "a system user")
        data = os.stat("/var/lib/warren")
        self.assertEqual((data.st_uid, stat.S_IMODE(data.st_mode)), (user.pw_uid, 0o700))
        self.assertIn("/etc/warren/warren.conf", run("dpkg-query", "-W", "-f=${Conffiles}", "warren"))
        with open(UNIT) as f:
            unit = f.read()
        for line in ["Type=notify", "User=warren", "Restart=on-failure", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "ExecStart=/usr/bin/warrend --config /etc/warren/warren.conf"]:
            self.assertIn(line, unit)
        verify = subprocess.run(["systemd-analyze", "verify", UNIT], capture_output=True, text=True)
        self.assertEqual(verify.returncode, 0, verify.stderr)

    def test_2_warrend_starts_with_the_installed_config_and_notifies_systemd(self):
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            notify_path = os.path.join(d, "notify")
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(notify_path)
            os.chmod(notify_path, 0o777)  # warrend runs as warren
            notify.settimeout(30)
            # The installed configuration; only the ports are moved off the standard ones,
            # which a RabbitMQ on this machine may hold.
            port, management = free_port(), free_port()
            proc = subprocess.Popen(
                ["setpriv", "--reuid=warren", "--regid=warren", "--init-groups", "--no-new-privs",
                 "/usr/bin/warrend", "--config", CONF, "--port", str(port), "--management-port", str(management),
                 "--prometheus-port", "0"],
                env={"NOTIFY_SOCKET": notify_path, "PATH": "/usr/bin:/bin"},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                ready = notify.recv(4096).decode()
                self.assertIn("READY=1", ready)
                self.assertIn(f"amqp={port}", ready)
                self.assertEqual(proc.stdout.readline().strip(), f"ready amqp={port} management={management}")
                conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
                ch = conn.channel()
                ch.queue_declare("packaged", durable=True)
                ch.confirm_delivery()
                ch.basic_publish("", "packaged", b"kept", pika.BasicProperties(delivery_mode=2))
                conn.close()
                # The data went where the installed configuration says, owned by warren.
                files = glob.glob("/var/lib/warren/*")
                self.assertTrue(files)
                warren_uid = pwd.getpwnam("warren").pw_uid
                for f in files:
                    self.assertEqual(os.stat(f).st_uid, warren_uid, f)
                proc.send_signal(signal.SIGTERM)
                self.assertIn("STOPPING=1", notify.recv(4096).decode())
                self.assertEqual(proc.wait(timeout=60), 0, proc.stderr.read())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                proc.stderr.close()
                notify.close()

    def test_3_remove_keeps_data_and_config_then_purge_removes_everything(self):
        run("dpkg", "-r", "warren")
        for gone in ["/usr/bin/warrend", "/usr/bin/warrenctl", UNIT]:
            self.assertFalse(os.path.exists(gone), gone)
        self.assertTrue(os.path.exists(CONF), "remove keeps the configuration")
        self.assertTrue(glob.glob("/var/lib/warren/*"), "remove keeps the messages")
        run("dpkg", "--purge", "warren")
        for gone in ["/etc/warren", "/var/lib/warren"]:
            self.assertFalse(os.path.exists(gone), gone)
        with self.assertRaises(KeyError):
            pwd.getpwnam("warren")
        self.assertNotEqual(subprocess.run(["dpkg", "-s", "warren"], capture_output=True).returncode, 0)


if __name__ == "__main__":
    unittest.main()
