"""The pytest plugin (src/python/pytest_warren.py) as a project would use it: pytest runs
tests/pytest_plugin/ with -p pytest_warren; they pass against one warrend for the session,
which is gone when pytest ends."""
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@unittest.skipIf("AMQP_PORT" in os.environ, "starts its own warrend")
class PytestPlugin(unittest.TestCase):
    def run_pytest(self, *args, env=None):
        with tempfile.NamedTemporaryFile("r", suffix=".record") as record:
            env = dict(os.environ if env is None else env, PYTHONPATH=os.path.join(ROOT, "src", "python"),
                       WARREN_PLUGIN_RECORD=record.name)
            done = subprocess.run(
                ["/usr/bin/python3", "-m", "pytest", "-p", "pytest_warren", "-p", "no:cacheprovider", "-q", *args,
                 os.path.join(ROOT, "tests", "pytest_plugin")],
                env=env, capture_output=True, text=True, timeout=240)
            return done, record.read().splitlines()

    def test_one_warrend_serves_the_session_and_stops_with_it(self):
        done, record = self.run_pytest("--warrend", os.environ["WARREND"])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("2 passed", done.stdout)
        self.assertEqual(len(record), 2)
        self.assertEqual(record[0], record[1], "both tests got the same server")
        pid = int(record[0].split()[1])
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "warrend outlived the session")

    def test_warrend_from_the_environment(self):
        env = dict(os.environ)
        done, _ = self.run_pytest(env=env)  # WARREND is set by the test runner
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_a_warrend_that_cannot_start_fails_the_tests_with_its_reason(self):
        done, _ = self.run_pytest("--warrend", os.environ["WARREND"], env=dict(os.environ, WARREND="/bin/false"))
        self.assertEqual(done.returncode, 0, "--warrend wins over $WARREND")
        done, record = self.run_pytest(env=dict(os.environ, WARREND="/bin/false"))
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("warrend exited (1)", done.stdout)
        self.assertEqual(record, [])


if __name__ == "__main__":
    unittest.main()
