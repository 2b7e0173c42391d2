"""The README's and docs/studio.md's pictures of the studio, taken in headless Chromium on real runs.

    python benchmarks/studio/screenshots.py ROOT --finished RUN_ID --live RUN_ID --photo PICTURE --out docs/images

ROOT holds the runs; ``--finished`` is a finished run (the Runs page of it, and the model of Try it), ``--live``
one that is training while this runs (its curves grow within the epoch), ``--photo`` the picture uploaded on the
Try it page. Needs the studio extra, selenium, and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(driver, condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := condition(driver):
                return value
        except Exception:  # not on the page yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out; the page shows: {driver.find_element('tag name', 'body').text[:300]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--finished", required=True)
    p.add_argument("--live", required=True)
    p.add_argument("--photo", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("docs/images"))
    args = p.parse_args()
    port = free_port()
    cnnzoo = Path(sys.executable).with_name("cnnzoo")
    server = subprocess.Popen([str(cnnzoo), "studio", str(args.root), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                    "--hide-scrollbars"):  # fmt: skip
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(f"{url}/zoo/resnet18")
            wait_for(driver, lambda d: d.find_elements("css selector", "#diagram g.stage-row"))
            time.sleep(1)
            driver.save_screenshot(str(args.out / "studio-zoo.png"))

            driver.get(f"{url}/runs/{args.live}")
            wait_for(driver, lambda d: float(d.find_element("css selector", "#curves").get_attribute("data-progress"))
                     % 1 > 0.3)  # fmt: skip
            time.sleep(1)
            driver.save_screenshot(str(args.out / "studio-runs.png"))

            driver.get(f"{url}/try")
            wait_for(driver, lambda d: d.find_element("css selector", "#try-run").get_attribute("value"))
            driver.execute_script(
                "const s = document.querySelector('#try-run'); s.value = arguments[0];"
                "s.dispatchEvent(new Event('change'));",
                args.finished,
            )
            driver.find_element("css selector", "#try-file").send_keys(str(args.photo.resolve()))
            wait_for(driver, lambda d: d.find_element("css selector", "#result").get_attribute("data-state") == "done")
            time.sleep(1)
            driver.save_screenshot(str(args.out / "studio-try.png"))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}/studio-zoo.png, studio-runs.png, studio-try.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
