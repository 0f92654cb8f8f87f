"""Drive Debian's headless Chromium over the DevTools protocol: open a page, click, read its
text and take a screenshot, the way a person would look at the UI."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests
from websockets.sync.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1600,1000")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HeadlessChromium:
    def __init__(self, user_data_dir: Path):
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            raise RuntimeError("Debian's chromium package is not installed (.ci/run installs it)")
        self.port = _free_port()
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--remote-debugging-port={self.port}", f"--user-data-dir={user_data_dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        try:
            deadline = time.monotonic() + 60  # a first start under load builds its caches
            while True:
                try:
                    pages = requests.get(f"http://127.0.0.1:{self.port}/json", timeout=10).json()
                    page = next(p for p in pages if p["type"] == "page")
                    break
                except (requests.RequestException, StopIteration, ValueError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        except BaseException:  # no browser left behind when it does not come up
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def call(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for_text(self, texts: list[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        body = ""
        while time.monotonic() < deadline:
            body = self.evaluate("document.body ? document.body.innerText : ''") or ""
            if all(t in body for t in texts):
                return body
            time.sleep(0.5)
        raise AssertionError(f"page never showed {texts}; it shows: {body[:500]!r}")

    def _button(self, label: str) -> str:
        return f"[...document.querySelectorAll('button')].find(b => b.innerText.trim() === {json.dumps(label)})"

    def click_button(self, label: str) -> bool:
        return bool(self.evaluate(f"(() => {{ const b = {self._button(label)}; if (b) {{ b.click(); return true; }} return false; }})()"))

    def shows_button(self, label: str) -> bool:
        return bool(self.evaluate(f"Boolean({self._button(label)})"))

    def dismiss(self, label: str, wait_s: float = 15) -> bool:
        """Click the button ``label`` of a dialog if one shows up within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.click_button(label):
                while self.shows_button(label) and time.monotonic() < deadline + 10:  # until the dialog has closed
                    time.sleep(0.1)
                return True
            time.sleep(0.5)
        return False

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
