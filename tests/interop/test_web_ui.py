"""The management web page in a real browser: Debian's headless Chromium, driven through the
DevTools protocol over a pipe (--remote-debugging-pipe: no extra client library), shows a
declared queue with its message count, and its Purge button empties the queue. A
screenshot is kept in $WARREN_ARTIFACTS (else the system's temporary directory)."""
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import pika

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)


class Chromium:
    """A headless Chromium and one page of it, spoken to in the DevTools protocol."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="warren-chromium-")
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()

        def give_pipes():  # the protocol's pipe is fds 3 (commands) and 4 (answers)
            # Moved out of the way first: either end may itself be fd 3 or 4.
            commands, answers = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10), fcntl.fcntl(
                from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             "--window-size=1200,800", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            preexec_fn=give_pipes)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, timeout=60):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:  # answers and events interleave; events are not needed here
            while b"\0" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                    raise TimeoutError(f"no answer to {method}")
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open(self, url):
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        return result["result"].get("value")

    def wait_for(self, expression, expected, timeout=30):
        """The page refreshes its figures by itself: ask until it shows them (or time out)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.evaluate(expression)
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


class WebUi(unittest.TestCase):
    def setUp(self):
        if broker().external:
            self.skipTest("Warren's own page")
        self.browser = Chromium()

    def tearDown(self):
        self.browser.close()

    def test_a_queue_shows_with_its_count_and_purge_empties_it(self):
        queue = unique("ui")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        ch.confirm_delivery()
        for body in [b"1", b"2", b"3"]:
            ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
        self.browser.open(f"http://127.0.0.1:{broker().mgmt_port}/#/login/guest/guest")
        cell = f"(() => {{ const c = document.querySelector('tr[data-queue=\"{queue}\"] td.ready'); " \
               f"return c ? c.textContent : null; }})()"
        self.assertEqual(self.browser.wait_for(cell, "3"), "3")
        artifacts = os.environ.get("WARREN_ARTIFACTS", tempfile.gettempdir())
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "web-ui-queues.png")
        self.browser.screenshot(shot)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertTrue(self.browser.evaluate(
            f"(() => {{ document.querySelector('tr[data-queue=\"{queue}\"] button.purge').click(); return true; }})()"))
        self.assertEqual(self.browser.wait_for(cell, "0"), "0")
        self.assertEqual(ch.queue_declare(queue, passive=True).method.message_count, 0)
        ch.queue_delete(queue)
        conn.close()

    def test_the_page_is_self_contained(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{broker().mgmt_port}/", timeout=30) as r:
            page = r.read().decode()
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.assertNotIn("http://", page.replace("http://127.0.0.1", ""))  # nothing fetched from elsewhere
        self.assertNotIn("https://", page)
        self.assertNotIn("<script src", page)


if __name__ == "__main__":
    unittest.main()
