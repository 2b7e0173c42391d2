"""``cnnzoo studio`` in a real headless Chromium: every page loads directly, a picture uploaded and one drawn on
the canvas come back classified, and the curves of a run grow on the page while it trains. Screenshots go to the
test's tmp dir (and, with ``CNNZOO_STUDIO_SCREENSHOTS=DIR``, to DIR: how docs/images/studio-*.png are made)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio extra (fastapi) is not installed")
from test_studio_api import RUN, ServerThread, png_bytes, studio_root

from helpers_train import start_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


def _no_browser(why: str) -> None:
    if os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"no chromium in CI ({why}): `make test` installs chromium and chromium-driver with apt as root")
    pytest.skip(f"no chromium: {why}")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (it takes seconds to start)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed")
    if not CHROMIUM or not CHROMEDRIVER:
        _no_browser("install chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--disable-extensions", "--no-first-run", "--proxy-server=127.0.0.1:9"):  # fmt: skip
        options.add_argument(arg)
    options.add_argument("--proxy-bypass-list=127.0.0.1")  # only the studio answers: anything else fails to load
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as exc:  # a browser that cannot start here is "no browser", in one line
        _no_browser(f"chromium did not start ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def studio(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("studio-browser")
    root = studio_root(base, trained_run)
    with ServerThread(root) as server:
        server.root, server.base, server.shots = root, base, base / "screenshots"
        server.shots.mkdir()
        yield server


@pytest.fixture
def slow_run(studio):
    """A training that takes a while: slow_test_net sleeps 40 ms a step, ~58 steps an epoch at batch 8."""
    proc = start_cli("train", "slow_test_net", "--epochs", "3", "--batch-size", "8", "--augment", "none",
                     "--out", str(studio.root / "slow-live"), "--quiet", cwd=studio.base)  # fmt: skip
    yield proc
    proc.kill()
    proc.communicate()


def wait_for(driver, condition, timeout=20.0, what="the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
        except Exception:  # an element not there yet, or replaced while read
            value = None
        if value:
            return value
        time.sleep(0.1)
    shown = driver.find_element("tag name", "body").text[:500]
    raise AssertionError(f"{what} did not happen within {timeout} s; the page shows: {shown}")


def shoot(driver, studio, name):
    path = studio.shots / f"studio-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000  # a real picture of a page, not an empty one
    extra = os.environ.get("CNNZOO_STUDIO_SCREENSHOTS")
    if extra:
        shutil.copy(path, Path(extra) / path.name)


def text(driver, css):
    return driver.find_element("css selector", css).text


def test_the_zoo_page_draws_a_model_and_the_cost_table(browser, studio):
    browser.get(f"{studio.url}/zoo/vgg11")
    wait_for(
        browser, lambda d: len(d.find_elements("css selector", "#diagram g.stage-row")) == 14, what="vgg11's diagram"
    )
    assert "vgg11" in text(browser, "#model-detail h2")
    assert "128,806,154 parameters" in text(browser, "#model-detail")
    rows = browser.find_elements("css selector", "#models tbody tr")
    assert "lenet" in [r.get_attribute("data-model") for r in rows]
    assert wait_for(browser, lambda d: len(d.find_elements("css selector", "#costs tbody tr")) == 3)
    assert "64×112×112" in browser.find_element("css selector", "#diagram").text
    assert "multiply-accumulates (MACs) per image" in text(browser, "#diagram-legend")  # what the bars are
    shoot(browser, studio, "zoo")
    rows[[r.get_attribute("data-model") for r in rows].index("lenet")].click()  # a click goes to another model
    wait_for(browser, lambda d: "/zoo/lenet" in d.current_url and text(d, "#model-detail h2") == "lenet")


BOOK_SECTION = {"googlenet": "7.4", "resnet18": "8.6", "densenet": "8.7", "nin": "7.3"}


def _open_stage(driver, stage: str):
    details = driver.find_element("css selector", f'details.stage-graph[data-stage="{stage}"]')
    details.find_element("css selector", "summary").click()
    wait_for(driver, lambda d: details.get_attribute("open") is not None, what=f"stage {stage} opening")
    return details


@pytest.mark.parametrize(
    ("model", "stage", "css", "count", "words"),
    [
        ("googlenet", "2", ".block.inception .path", 8, ("1×1 conv, 64", "5×5 conv, 32", "3×3 max pool", "⧺")),
        ("resnet18", "2", ".block.residual .path.shortcut", 2, ("1×1 conv, 128, stride 2", "identity", "⊕ add")),
        ("densenet", "1", ".block.dense .join.concat", 4, ("dense block of 4", "concatenated to its input")),
        ("nin", "0", ".block.nin .node", 6, ("11×11 conv, 96, stride 4", "1×1 conv, 96")),
    ],
)
def test_the_zoo_draws_each_network_as_its_real_graph(browser, studio, model, stage, css, count, words):
    """Inception's four paths side by side joined by concatenation, a residual block's shortcut joined by addition,
    a dense block's concatenations, NiN's 1x1 convolutions: each stage opens into what the book draws."""
    browser.get(f"{studio.url}/zoo/{model}")
    wait_for(browser, lambda d: len(d.find_elements("css selector", "details.stage-graph")) > 3, what="the stages")
    assert not any(e.is_displayed() for e in browser.find_elements("css selector", css))  # closed until opened
    opened = _open_stage(browser, stage)
    assert len(opened.find_elements("css selector", css)) == count
    for word in words:
        assert word in opened.text, (word, opened.text[:400])
    assert "⊕ adds them" in text(browser, "#graph-legend") and "⧺ concatenates" in text(browser, "#graph-legend")
    assert f"The book ({BOOK_SECTION[model]})" in opened.find_element("css selector", "p.why").text  # what it is for
    ties = text(browser, "#book-ties")
    assert f"section {BOOK_SECTION[model]}" in ties
    if model != "nin":  # the book shows NiN's training as a plot only
        assert "The book printed a test accuracy of" in ties
    trace = browser.find_element("css selector", "#book-trace")
    if model in ("googlenet", "resnet18"):  # the book printed their traces: the same, line for line
        assert trace.get_attribute("data-same") == "true" and "the same, line for line" in trace.text
    else:
        assert "the book prints none for this network" in trace.text
    if model == "googlenet":
        assert "0.886 for GoogLeNet" in ties and "public Fashion-MNIST table: 0.937" in ties
        browser.execute_script("arguments[0].scrollIntoView()", opened)
        shoot(browser, studio, "zoo-googlenet-inception")


def test_try_it_classifies_an_upload_and_a_drawing(browser, studio, tmp_path):
    browser.get(f"{studio.url}/try")
    wait_for(browser, lambda d: d.find_element("css selector", "#try-run").get_attribute("value") == RUN)
    picture = tmp_path / "my-photo.txt"  # judged by its bytes, whatever its name
    picture.write_bytes(png_bytes(7, scale=6, dark_on_light=True, mode="RGB"))
    browser.find_element("css selector", "#try-file").send_keys(str(picture))
    wait_for(browser, lambda d: d.find_element("css selector", "#result").get_attribute("data-state") == "done")
    assert text(browser, "#top-class") == "class7"
    assert browser.find_element("css selector", "#cam").get_attribute("src").startswith("data:image/png")
    assert len(browser.find_elements("css selector", "#stage-list .stage img")) == 8  # the 4-D stages of lenet_bn
    shoot(browser, studio, "try")
    # a drawing: a bright block where class 0's block is (rows 3-9, columns 2-6 of 28), on black
    browser.execute_script(
        "const c = document.querySelector('#pad').getContext('2d'); c.fillStyle = '#fff';"
        "c.fillRect(2 * 10, 3 * 10, 4 * 10, 6 * 10);"
    )
    from selenium.webdriver import ActionChains

    pad = browser.find_element("css selector", "#pad")  # and a stroke drawn with the mouse, as a person would
    # a stroke inside the block: (35, 45) to (45, 75), 22 px wide; offsets are from the pad's centre (140, 140)
    stroke = ActionChains(browser).move_to_element_with_offset(pad, -105, -95).click_and_hold()
    stroke.move_by_offset(10, 30).release().perform()
    browser.execute_script("document.querySelector('#result').dataset.state = 'waiting'")
    browser.find_element("css selector", "#pad-classify").click()
    wait_for(browser, lambda d: d.find_element("css selector", "#result").get_attribute("data-state") == "done")
    assert text(browser, "#top-class") == "class0"
    assert "drawing.png: 280×280" in text(browser, "#result-note")


def test_a_bad_upload_is_one_line_on_the_page(browser, studio, tmp_path):
    browser.get(f"{studio.url}/try")
    wait_for(browser, lambda d: d.find_element("css selector", "#try-run").get_attribute("value") == RUN)
    fake = tmp_path / "shoe.png"
    fake.write_text("this is not a picture")
    browser.find_element("css selector", "#try-file").send_keys(str(fake))
    message = wait_for(browser, lambda d: text(d, "#error"), what="the error line")
    assert message.startswith("the upload is not a picture") and "\n" not in message


def test_the_curves_grow_on_the_page_while_a_run_trains(browser, studio, slow_run):
    run = studio.root / "slow-live"
    wait_for(browser, lambda d: (run / "live.json").exists(), timeout=60, what="the slow run's start")
    browser.get(f"{studio.url}/runs/slow-live")
    progress = []  # how far along the x axis (epochs) the curves reach, at each redraw of the page

    def further(d):
        x = float(d.find_element("css selector", "#curves").get_attribute("data-progress"))
        if not progress or x != progress[-1]:
            progress.append(x)
        return len(progress) >= 4

    wait_for(browser, further, timeout=60, what="the curves growing")
    assert progress == sorted(progress) and progress[-1] > progress[1] > 0, progress  # live: within an epoch too
    assert any(x % 1 > 0 for x in progress), progress  # a point part-way through an epoch
    # the Runs list redraws every 3 s: a row read while it is replaced is read again
    wait_for(browser, lambda d: "training" in text(d, "#runs tbody tr[data-run='slow-live']"), what="its status")
    shoot(browser, studio, "runs")
    assert (run / "live.json").exists()  # what the page read: the run layer's live file (cnnzoo.run.live)


def test_a_fresh_install_with_no_runs_tries_the_shipped_weights_from_the_zoo(browser, tmp_path):
    from PIL import Image

    (tmp_path / "runs").mkdir()
    picture = tmp_path / "trousers.png"  # two dark legs on paper: a photo-like pair of trousers
    image = Image.new("RGB", (120, 160), (235, 232, 225))
    for x in (30, 66):
        image.paste((40, 40, 70), (x, 10, x + 24, 150))
    image.paste((40, 40, 70), (30, 10, 90, 40))
    image.save(picture)
    with ServerThread(tmp_path / "runs") as server:
        browser.get(f"{server.url}/zoo/lenet_bn")
        link = wait_for(browser, lambda d: d.find_element("css selector", "#model-weights a"), what="the weights link")
        assert link.text == "lenet_bn.fashion_mnist" and "test accuracy" in text(browser, "#model-weights")
        link.click()
        wait_for(browser, lambda d: d.find_element("css selector", "#try-run").get_attribute("value")
                 == "weight:lenet_bn.fashion_mnist", what="the weight chosen on Try it")  # fmt: skip
        assert not browser.find_element("css selector", "#error").is_displayed()  # no "no runs" complaint
        browser.find_element("css selector", "#try-file").send_keys(str(picture))
        wait_for(browser, lambda d: d.find_element("css selector", "#result").get_attribute("data-state") == "done")
        assert text(browser, "#top-class") == "Trouser"  # (0.74 with the shipped file)


def test_try_it_starts_with_the_best_run_or_the_best_shipped_weight(browser, tmp_path, trained_run):
    import json
    import shutil

    from cnnzoo.weights import list_weights

    root = tmp_path / "runs"
    root.mkdir()
    best = max((w for w in list_weights() if w.shipped), key=lambda w: w.test_acc)
    with ServerThread(root) as server:  # no runs: the shipped weight with the best test accuracy
        browser.get(f"{server.url}/try")
        wait_for(browser, lambda d: d.find_element("css selector", "#try-run").get_attribute("value")
                 == f"weight:{best.name}", what=f"weight:{best.name} chosen")  # fmt: skip
    for name, val in (("newer-worse", 0.5), ("older-better", 0.9)):  # the best validation accuracy, not the newest
        shutil.copytree(trained_run, root / name)
        rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
        text_rows = "".join(json.dumps({**r, "val_acc": val}) + "\n" for r in rows)
        (root / name / "metrics.jsonl").write_text(text_rows)
    for name in ("config.json", "metrics.jsonl", "live.json"):  # the better run is the older one: listed second
        if (root / "older-better" / name).exists():
            os.utime(root / "older-better" / name, (1, 1))
    with ServerThread(root) as server:
        browser.get(f"{server.url}/try")
        wait_for(browser, lambda d: d.find_element("css selector", "#try-run").get_attribute("value")
                 == "older-better", what="the run with the best validation accuracy")  # fmt: skip


def test_the_runs_list_follows_the_root_while_it_is_open(browser, tmp_path, trained_run):
    import shutil

    from cnnzoo.base.rundirs import RunLock

    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained_run, root / "first")
    shutil.copytree(trained_run, root / "busy")
    lock = RunLock(root / "busy").acquire()
    try:
        with ServerThread(root) as server:
            browser.get(f"{server.url}/runs")
            row = "#runs tbody tr[data-run='{}']"
            wait_for(browser, lambda d: d.find_elements("css selector", row.format("first")), what="the first run")
            wait_for(browser, lambda d: "training" in text(d, row.format("busy")), what="the training status")
            shutil.copytree(trained_run, root / "started-later")  # a run that appears after the page opened
            wait_for(browser, lambda d: d.find_elements("css selector", row.format("started-later")), what="new run")
            lock.release()  # the training ends: its row says so without a reload
            wait_for(browser, lambda d: "finished" in d.find_element("css selector", row.format("busy")).text,
                     what="the finished status")  # fmt: skip
    finally:
        lock.release()


def test_a_runs_curves_put_losses_and_accuracies_on_their_own_axes_with_values_on_hover(browser, studio):
    browser.get(f"{studio.url}/runs/{RUN}")
    wait_for(browser, lambda d: int(d.find_element("css selector", "#curves").get_attribute("data-points") or 0) > 0,
             what="the curves")  # fmt: skip
    labels = {p.get_attribute("data-label") for p in browser.find_elements("css selector", "#curves path.series")}
    assert {"train loss", "val loss", "test loss", "train acc", "val acc", "test acc"} <= labels, labels
    axes = [t.text for t in browser.find_elements("css selector", "#curves text.axis-name")]
    assert axes == ["loss", "accuracy"], axes
    hover = [t.get_attribute("textContent") for t in browser.find_elements("css selector", "#curves circle title")]
    assert any(re.fullmatch(r"test acc, epoch 3: [01]\.\d{4}", h) for h in hover), hover


def test_a_confusion_cell_opens_its_pictures(browser, studio, fake_train_data):
    browser.get(f"{studio.url}/runs/{RUN}")
    cell = "#confusion-table td.cell[data-true='0'][data-predicted='0']"
    wait_for(browser, lambda d: d.find_elements("css selector", cell), what="the confusion table")
    count = int(text(browser, cell))
    browser.find_element("css selector", cell).click()
    wait_for(browser, lambda d: d.find_elements("css selector", "#cell-images figure.thumb img"), what="the pictures")
    assert text(browser, "#cell-images p").startswith(f"{count} test pictures of class0 taken for class0")
    shown = browser.find_elements("css selector", "#cell-images figure.thumb")
    assert len(shown) == min(count, 24)


def _attr(driver, css, name):
    return driver.find_element("css selector", css).get_attribute(name)


def test_the_scrubber_moves_filters_per_class_curves_and_the_learners_picture_through_the_epochs(
    browser, studio, tmp_path
):
    browser.get(f"{studio.url}/runs/{RUN}")
    wait_for(browser, lambda d: _attr(d, "#learn-box", "data-shown") == "3", what="the last epoch on the scrubber")
    assert "all 3 epochs" in text(browser, "#learn-note")
    assert len(browser.find_elements("css selector", "#learn-per-class tbody tr")) == 10
    assert wait_for(browser, lambda d: _attr(d, "#curves line.marker", "data-epoch") == "3", what="the marker")
    last_filters = _attr(browser, "#learn-filters", "src")
    picture = tmp_path / "mine.png"  # the learner's own picture: class 4's block
    picture.write_bytes(png_bytes(4, scale=5))
    browser.find_element("css selector", "#learn-file").send_keys(str(picture))
    wait_for(browser, lambda d: d.find_element("css selector", "#learn-picture").is_displayed(), what="the picture")
    wait_for(browser, lambda d: text(d, "#learn-top").startswith("class4"), what="the final model's answer")
    last_cam, last_top = _attr(browser, "#learn-cam", "src"), text(browser, "#learn-top")
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element("css selector", "#learn-box"))
    shoot(browser, studio, "scrubber-epoch-3")
    scrub = browser.find_element("css selector", "#scrub")
    from selenium.webdriver.common.keys import Keys

    scrub.send_keys(Keys.HOME)  # to epoch 1, as a person would with the keyboard (or by dragging)
    wait_for(browser, lambda d: _attr(d, "#learn-box", "data-shown") == "1", what="epoch 1 on the scrubber")
    assert text(browser, "#scrub-label").startswith("1 of 3")
    assert _attr(browser, "#curves line.marker", "data-epoch") == "1"
    assert _attr(browser, "#learn-filters", "src") != last_filters  # the filters changed in training
    assert _attr(browser, "#learn-cam", "src") != last_cam or text(browser, "#learn-top") != last_top
    shoot(browser, studio, "scrubber-epoch-1")
    scrub.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: _attr(d, "#learn-box", "data-shown") == "2", what="epoch 2 on the scrubber")


def _click_map_pixel(driver, channel, y, x):
    """Click pixel (y, x) of ``channel`` in the arithmetic card's feature maps, as a person would: the pointer moved
    to that spot of the picture on the screen (the picture may be drawn smaller than its natural size)."""
    from selenium.webdriver.common.action_chains import ActionChains

    img = driver.find_element("css selector", "#arith-maps")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    box = driver.execute_script(
        "const i = arguments[0], r = i.getBoundingClientRect();"
        "return {left: r.left + i.clientLeft, top: r.top + i.clientTop, scale: i.clientWidth / i.naturalWidth,"
        " layout: JSON.parse(i.dataset.layout)};", img)  # fmt: skip
    layout, scale = box["layout"], box["scale"]
    row, col = divmod(channel, layout["cols"])
    f, gap = layout["factor"], layout["gap"]
    px = col * (layout["width"] * f + gap) + (x + 0.5) * f
    py = row * (layout["height"] * f + gap) + (y + 0.5) * f
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(int(box["left"] + px * scale), int(box["top"] + py * scale))
    actions.w3c_actions.pointer_action.click()
    actions.perform()


def _arithmetic_agrees(driver, channel, y, x):
    want = f"channel {channel}, row {y}, column {x}"
    wait_for(driver, lambda d: text(d, "#arith-at") == want and _attr(d, "#arith", "data-state") == "done",
             what=f"the arithmetic of {want}")  # fmt: skip
    total, value = (
        float(_attr(driver, "#arith-steps", "data-total")),
        float(_attr(driver, "#arith-steps", "data-value")),
    )
    assert abs(total - value) <= 1e-5 * (1 + abs(value)), (total, value)
    return text(driver, "#arith-steps")


@pytest.mark.parametrize(
    ("model", "layer", "channel", "y", "x", "words"),
    [
        (
            RUN,
            None,
            2,
            5,
            7,
            ["input channel 0", "kernel", "products", "+ bias", "BatchNorm with its running", "sigmoid("],
        ),
        ("weight:nin@96.fashion_mnist", "0.2", 3, 4, 6, ["1x1 conv 96→96", "The other 92 input channels", "ReLU("]),
        (
            "weight:resnet18@32.fashion_mnist",
            "2.0",
            1,
            2,
            3,
            ["residual block", "Main path (2.0.bn2)", "+ shortcut (2.0.conv3)"],
        ),
        ("weight:resnet18@32.fashion_mnist", "0.3", 0, 1, 1, ["MaxPool2d", "The largest of them"]),
    ],
)
def test_clicking_a_feature_map_pixel_shows_arithmetic_that_equals_the_forward_pass(
    browser, studio, tmp_path, model, layer, channel, y, x, words
):
    from selenium.webdriver.support.ui import Select

    browser.get(f"{studio.url}/try")
    wait_for(browser, lambda d: d.find_elements("css selector", f"#try-run option[value='{model}']"), what=model)
    Select(browser.find_element("css selector", "#try-run")).select_by_value(model)
    picture = tmp_path / f"{model.replace(':', '-')}.png"
    picture.write_bytes(png_bytes(7, scale=6, dark_on_light=True, mode="RGB"))
    browser.find_element("css selector", "#try-file").send_keys(str(picture))
    wait_for(browser, lambda d: _attr(d, "#arith", "data-state") == "done", what="the arithmetic card")
    if layer is not None:
        browser.execute_script("arguments[0].dataset.state = 'waiting'", browser.find_element("css selector", "#arith"))
        Select(browser.find_element("css selector", "#arith-layer")).select_by_value(layer)
        wait_for(browser, lambda d: _attr(d, "#arith", "data-state") == "done", what=f"layer {layer}")
    _click_map_pixel(browser, channel, y, x)
    steps = _arithmetic_agrees(browser, channel, y, x)
    for word in words:
        assert word in steps, steps
    if model == RUN:
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element("css selector", "#arith"))
        shoot(browser, studio, "arithmetic")


def test_side_by_side_runs_one_picture_through_several_models_and_keeps_the_choice_in_the_address(
    browser, studio, tmp_path
):
    from urllib.parse import parse_qs, urlparse

    lenet = "weight:lenet_bn.fashion_mnist"
    browser.get(f"{studio.url}/side?with={RUN}&with={lenet}")
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#side-choices input:checked")) == 2,
             what="the two models of the address ticked")  # fmt: skip
    picture = tmp_path / "side.png"
    picture.write_bytes(png_bytes(6, scale=6, dark_on_light=True, mode="RGB"))
    browser.find_element("css selector", "#side-file").send_keys(str(picture))
    wait_for(browser, lambda d: _attr(d, "#side-results", "data-state") == "done"
             and len(d.find_elements("css selector", ".side-card[data-top]")) == 2, what="two answers")  # fmt: skip
    cards = browser.find_elements("css selector", ".side-card")
    assert [c.get_attribute("data-model") for c in cards] == [RUN, lenet]
    assert cards[0].get_attribute("data-top") == "class6"  # the run trained on these blocks knows them
    for card in cards:
        assert "% sure" in card.text and len(card.find_elements("css selector", ".topk-row")) == 3
        assert card.find_element("css selector", "img").get_attribute("src").startswith("data:image/png")
    resnet = "weight:resnet18@32.fashion_mnist"
    browser.find_element("css selector", f"#side-choices input[value='{resnet}']").click()
    wait_for(browser, lambda d: len(d.find_elements("css selector", ".side-card[data-top]")) == 3, what="a third")
    assert parse_qs(urlparse(browser.current_url).query)["with"] == [RUN, lenet, resnet]
    shoot(browser, studio, "side-by-side")
    browser.get(browser.current_url)  # the address, shared: the same three models are ticked
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#side-choices input:checked")) == 3,
             what="the shared view's models")  # fmt: skip
    assert "Give a picture" in text(browser, "#side-results")


AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(driver) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2 A and AA rules)."""
    if not AXE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no axe-core at {AXE} in CI: `make test` installs it with npm")
        pytest.skip("no axe-core: run `make browser` (npm install axe-core into .cache/axe)")
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},"
        " resultTypes: ['violations']}).then((r) => done(r.violations), (e) => done([{id: 'axe-error', "
        "impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "where": [n["target"] for n in v["nodes"][:3]]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_the_accessibility_check(browser, studio, tmp_path):
    """axe-core in the real page: no serious or critical violation on the Zoo, a run's page with its scrubber,
    Try it with a result and the arithmetic, and Side by side with answers."""
    from selenium.webdriver.support.ui import Select

    picture = tmp_path / "a11y.png"
    picture.write_bytes(png_bytes(3, scale=5))
    pages = {}
    browser.get(f"{studio.url}/zoo/googlenet")
    wait_for(browser, lambda d: d.find_elements("css selector", "details.stage-graph"), what="the zoo")
    _open_stage(browser, "2")
    pages["zoo"] = axe_violations(browser)
    browser.get(f"{studio.url}/runs/{RUN}")
    wait_for(browser, lambda d: _attr(d, "#learn-box", "data-shown") == "3", what="the run and its scrubber")
    pages["runs"] = axe_violations(browser)
    browser.get(f"{studio.url}/try")
    wait_for(browser, lambda d: d.find_elements("css selector", f"#try-run option[value='{RUN}']"), what="Try it")
    Select(browser.find_element("css selector", "#try-run")).select_by_value(RUN)
    browser.find_element("css selector", "#try-file").send_keys(str(picture))
    wait_for(browser, lambda d: _attr(d, "#arith", "data-state") == "done", what="a result and its arithmetic")
    pages["try"] = axe_violations(browser)
    browser.get(f"{studio.url}/side?with={RUN}")
    browser.find_element("css selector", "#side-file").send_keys(str(picture))
    wait_for(browser, lambda d: d.find_elements("css selector", ".side-card[data-top]"), what="side by side")
    pages["side"] = axe_violations(browser)
    assert pages == {"zoo": [], "runs": [], "try": [], "side": []}
