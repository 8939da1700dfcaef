"""A small W3C WebDriver client for Debian's chromium and chromedriver: what
the browser tests need (open, find, type, click, read, run a script, take a
screenshot), over chromedriver's HTTP on loopback. Headless, with a
profile of its own, and no network but loopback: every other name fails
to resolve and Chromium's background traffic is off."""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(AssertionError):
    pass


class Browser:
    def __init__(self, scratch, name="browser"):
        self.profile = os.path.join(scratch, name + "-profile")
        os.makedirs(self.profile, exist_ok=True)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(scratch, name + "-chromedriver.log"), "w", encoding="utf-8")
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}", "--allowed-ips=127.0.0.1"], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                raise AssertionError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=" + self.profile,
                "--window-size=1280,900", "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}})
        self.session = session["sessionId"]

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return json.load(reply)["value"]
        except urllib.error.HTTPError as e:
            value = json.load(e).get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:500]}") from None

    def _session(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    # ---- the page ----

    def open(self, url):
        self._session("POST", "/url", {"url": url})

    def url(self):
        return self._session("GET", "/url")

    def source(self):
        return self._session("GET", "/source")

    def script(self, source, *args):
        return self._session("POST", "/execute/sync", {"script": source, "args": list(args)})

    def find(self, css):
        """The first element matching `css`, or None."""
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return found[0][ELEMENT] if found else None

    def text(self, css):
        element = self.find(css)
        return self._session("GET", f"/element/{element}/text") if element else None

    def click(self, css):
        # A live page may replace the element between finding and clicking it: found again.
        for attempt in range(5):
            element = self.find(css)
            if not element:
                raise WebDriverError("nothing matches " + css)
            try:
                self._session("POST", f"/element/{element}/click", {})
                return
            except WebDriverError as e:
                if "stale element" not in str(e) or attempt == 4:
                    raise

    def type(self, css, text):
        element = self.find(css)
        if not element:
            raise WebDriverError("nothing matches " + css)
        self._session("POST", f"/element/{element}/value", {"text": text})

    def accept_dialog(self):
        self._session("POST", "/alert/accept", {})

    def cookies(self):
        return self._session("GET", "/cookie")

    def screenshot(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._session("GET", "/screenshot")))

    def wait_for(self, predicate, what, timeout=60):
        """The predicate's first true value, polled every 0.1 s (a condition on the page, not a sleep)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except WebDriverError as e:  # the page is changing under the query
                last = e
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}; url={self.url()}")

    def quit(self):
        try:
            self._session("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.log.close()
