"""The studio's screenshots in docs/images/, taken from real runs in a headless Chromium.

    python scripts/studio_screenshots.py ROOT RUN [--out docs/images] [--test-image 0]

ROOT is a directory of runs (the studio's root); RUN one of them, trained on Fashion-MNIST with epoch snapshots
(``cnnzoo train lenet_bn --epochs 6 --out ROOT/RUN``). The learner's picture is Fashion-MNIST test image
``--test-image`` rendered as a phone photo (:mod:`cnnzoo.data.photolike`). It writes

* ``studio-scrubber-first.png`` and ``studio-scrubber-last.png``: the run's page, "Watch it learn" at the first
  and the last kept epoch (filters, per-class accuracy, the picture's top 3 and Grad-CAM);
* ``studio-arithmetic.png``: Try it with the run, a pixel of the second convolution's maps written out;
* ``studio-side-by-side.png``: the picture through the run and two shipped weights.

Needs chromium and chromium-driver (``make browser``) and the studio extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "studio"))

from load import start_server  # noqa: E402


def _wait(driver, condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition(driver):
                return
        except Exception:  # an element not there yet, or redrawn while read
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout:g} s")


def _attr(driver, css, name):
    return driver.find_element("css selector", css).get_attribute(name)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _show(driver, css, out: Path, name: str) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element("css selector", css))
    time.sleep(0.3)
    driver.save_screenshot(str(out / name))
    print(out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--test-image", type=int, default=0)
    args = parser.parse_args(argv)
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    import cnnzoo
    from cnnzoo.data.photolike import photo_like_jpegs

    data = cnnzoo.load_dataset("fashion-mnist")
    label = data.classes[int(data.test_labels[args.test_image])]
    (jpeg,) = photo_like_jpegs(data.test_images[args.test_image : args.test_image + 1].numpy(), seed=args.test_image)
    picture = Path(tempfile.mkdtemp()) / f"my-{label.lower().replace('/', '-').replace(' ', '-')}-photo.jpg"
    picture.write_bytes(jpeg)
    proc, url = start_server(args.root.resolve())
    driver = _browser()
    try:
        driver.get(f"{url}/runs/{args.run}")
        _wait(driver, lambda d: _attr(d, "#learn-box", "data-shown"), "the scrubber")
        driver.find_element("css selector", "#learn-file").send_keys(str(picture))
        _wait(driver, lambda d: d.find_element("css selector", "#learn-picture").is_displayed(), "the picture")
        last = _attr(driver, "#learn-box", "data-shown")
        _show(driver, "#learn-box", args.out, "studio-scrubber-last.png")
        driver.execute_script("arguments[0].dataset.shown = ''", driver.find_element("css selector", "#learn-box"))
        driver.find_element("css selector", "#scrub").send_keys(Keys.HOME)
        _wait(driver, lambda d: _attr(d, "#learn-box", "data-shown") not in ("", last), "the first epoch")
        _show(driver, "#learn-box", args.out, "studio-scrubber-first.png")

        driver.get(f"{url}/try")
        _wait(driver, lambda d: d.find_elements("css selector", f"#try-run option[value='{args.run}']"), "Try it")
        Select(driver.find_element("css selector", "#try-run")).select_by_value(args.run)
        driver.find_element("css selector", "#try-file").send_keys(str(picture))
        _wait(driver, lambda d: _attr(d, "#arith", "data-state") == "done", "the arithmetic")
        convs = [o.get_attribute("value") for o in driver.find_elements("css selector", "#arith-layer option")
                 if " conv " in o.text]  # fmt: skip
        driver.execute_script("arguments[0].dataset.state = ''", driver.find_element("css selector", "#arith"))
        Select(driver.find_element("css selector", "#arith-layer")).select_by_value(convs[1])
        _wait(driver, lambda d: _attr(d, "#arith", "data-state") == "done", "the second convolution")
        _show(driver, "#arith", args.out, "studio-arithmetic.png")

        weights = "&".join(f"with=weight:{w}" for w in ("lenet_bn.fashion_mnist", "resnet18@32.fashion_mnist"))
        driver.get(f"{url}/side?with={args.run}&{weights}")
        _wait(driver, lambda d: len(d.find_elements("css selector", "#side-choices input:checked")) == 3, "ticks")
        driver.find_element("css selector", "#side-file").send_keys(str(picture))
        _wait(driver, lambda d: len(d.find_elements("css selector", ".side-card[data-top]")) == 3, "side by side")
        _show(driver, "#page-side", args.out, "studio-side-by-side.png")
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
