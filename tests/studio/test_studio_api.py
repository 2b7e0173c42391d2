"""``cnnzoo studio``'s JSON API through FastAPI's TestClient: every route, good and bad requests, the limits, and a
run whose curves are read while it trains. The helpers at the top are shared with the browser and load tests."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the studio extra (fastapi) is not installed")
from fastapi.testclient import TestClient
from PIL import Image

import cnnzoo
from cnnzoo import create_model, fit, resolve_config
from cnnzoo.base.errors import CheckpointError, ConfigError, ImageError
from cnnzoo.base.rundirs import RunLock
from cnnzoo.cli import main
from cnnzoo.run.live import LiveCurves
from cnnzoo.studio import create_app, zoo
from cnnzoo.studio.app import status_of
from cnnzoo.studio.inference import ModelCache, UploadTooLargeError
from cnnzoo.studio.runs import NotFoundError
from cnnzoo.train.state import Callback
from helpers_files import block_picture

RUN = "lenet_bn-done"


# ------------------------------------------------------------------------------------------------
# shared helpers (imported by test_studio_browser.py and test_studio_load.py)
# ------------------------------------------------------------------------------------------------
def studio_root(base: Path, trained_run: Path) -> Path:
    """A directory of runs holding a copy of the session's finished lenet_bn run as ``lenet_bn-done``."""
    root = base / "runs"
    root.mkdir()
    shutil.copytree(trained_run, root / RUN)
    return root


def png_bytes(k: int = 3, *, scale: int = 4, dark_on_light: bool = False, mode: str = "L", fmt: str = "PNG") -> bytes:
    """A picture of the blocks class ``k``, as a user might upload it."""
    buf = io.BytesIO()
    block_picture(k, scale=scale, dark_on_light=dark_on_light, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time: what "read-only" is checked against."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


class ServerThread:
    """uvicorn serving the studio for ``root`` on 127.0.0.1 at a free port, in a thread of this process."""

    def __init__(self, root: Path) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(root), log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the studio did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def root(tmp_path_factory, trained_run):
    return studio_root(tmp_path_factory.mktemp("studio"), trained_run)


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        yield c


def predict(client, data: bytes, name: str = "shoe.png", **form):
    return client.post(
        "/api/predict", files={"file": (name, data, "application/octet-stream")}, data={"run": RUN, **form}
    )


def assert_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and body["error"], body
    for word in words:
        assert word in body["error"], body
    return body["error"]


# ------------------------------------------------------------------------------------------------
# the zoo
# ------------------------------------------------------------------------------------------------
def test_models_lists_every_registered_model_with_its_size_and_cost(client):
    models = client.get("/api/models").json()
    assert [m["name"] for m in models] == cnnzoo.list_models()
    lenet = next(m for m in models if m["name"] == "lenet")
    assert lenet["params"] == sum(p.numel() for p in create_model("lenet").parameters()) == 61_706
    assert lenet["input_size"] == 28 and lenet["macs"] > 0


def test_a_model_is_its_stages_with_output_shapes_params_and_macs(client):
    vgg = client.get("/api/models/vgg11").json()
    assert vgg["input_shape"] == [1, 224, 224]
    assert [s["output_shape"] for s in vgg["stages"][:5]] == [[64, 112, 112], [128, 56, 56], [256, 28, 28],
                                                              [512, 14, 14], [512, 7, 7]]  # fmt: skip
    assert sum(s["params"] for s in vgg["stages"]) == vgg["params"] == 128_806_154
    assert sum(s["macs"] for s in vgg["stages"]) == vgg["macs"]
    assert [c["type"] for c in vgg["stages"][0]["children"]] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert_error(client.get("/api/models/resnet19"), 404, "unknown model 'resnet19'", "resnet18")


def test_the_inception_cost_table_and_a_bad_side(client):
    rows = client.get("/api/inception-cost").json()
    assert [r["block"].split(",")[0] for r in rows] == ["Inception(192", "3x3 conv", "5x5 conv"]
    assert rows[0]["macs"] < rows[1]["macs"] < rows[2]["macs"]  # the book's point: the block is the cheapest
    assert client.get("/api/inception-cost?side=14").json()[1]["macs"] * 4 == rows[1]["macs"]
    for bad in ("0", "abc", "100000"):
        assert_error(client.get(f"/api/inception-cost?side={bad}"), 400, "side")


# ------------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------------
def test_runs_list_detail_metrics_and_files(client, root):
    (root / "not-a-run").mkdir()  # a directory without config.json or last.pt is not listed
    runs = client.get("/api/runs").json()
    ids = [r["id"] for r in runs]  # other tests of this module add runs of their own to the shared root
    assert RUN in ids and "not-a-run" not in ids and set(ids) <= {RUN, "half", "live-run"}
    run = runs[ids.index(RUN)]
    assert run["model"] == "lenet_bn" and run["status"] == "finished" and run["epochs_done"] == run["epochs"] == 3
    detail = client.get(f"/api/runs/{RUN}").json()
    assert detail["classes"] == [f"class{k}" for k in range(10)] and detail["config"]["epochs"] == 3
    assert [r["class"] for r in detail["per_class"]] == detail["classes"]
    assert {"confusion.png", "per_class.csv", "report.md", "metrics.csv"} <= set(detail["files"])
    metrics = client.get(f"/api/runs/{RUN}/metrics").json()
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2, 3] and metrics["live"] == [] and not metrics["training"]
    png = client.get(f"/api/runs/{RUN}/files/confusion.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get(f"/api/runs/{RUN}/files/report.md").text.startswith("#")


def test_a_single_run_directory_is_a_root_too(trained_run):
    with TestClient(create_app(trained_run), base_url="http://127.0.0.1") as c:
        assert [r["id"] for r in c.get("/api/runs").json()] == [trained_run.name]
        assert c.get(f"/api/runs/{trained_run.name}/metrics").status_code == 200
        assert_error(c.get("/api/runs/other"), 404, "unknown run")


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/%2e%2e",
        "/api/runs/%2E%2E/metrics",
        "/api/runs/..%2f..%2fetc",
        "/api/runs/%2fetc%2fpasswd",
        "/api/runs/.hidden",
        "/api/runs/no-such-run",
        f"/api/runs/{RUN}/files/last.pt",  # not on the list of served files
        f"/api/runs/{RUN}/files/..%2fconfig.json",
        f"/api/runs/{RUN}/files/%2e%2e",
        "/api/runs/outside/files/config.json",  # a symlink leading out of the root
        "/no/such/page",
    ],
)
def test_no_path_leaves_the_root_or_reaches_an_unlisted_file(client, root, path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "config.json").write_text('{"secret": true}')
    link = root / "outside"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    response = client.get(path)
    assert_error(response, 404)
    assert "secret" not in response.text


def test_raw_traversal_paths_are_refused_at_the_socket_too(root):
    """httpx normalises ``..`` away; a raw request line is what an attacker sends."""
    with ServerThread(root) as server:
        for target in ("/api/runs/../../../etc/passwd", f"/api/runs/{RUN}/files/../../../../etc/passwd", "//etc/passwd",
                       "/static/../app.py", "/static/%2e%2e/app.py", "/etc/passwd"):  # fmt: skip
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            head = answer.split(b"\r\n", 1)[0]
            assert head.split()[1] in (b"400", b"404"), (target, answer[:300])
            assert b"root:" not in answer and b"create_app" not in answer, target


def test_the_studio_writes_nothing_into_run_directories(client, root):
    before = snapshot(root)
    for path in ("/api/runs", f"/api/runs/{RUN}", f"/api/runs/{RUN}/metrics", f"/api/runs/{RUN}/files/curves.png"):
        assert client.get(path).status_code == 200
    assert predict(client, png_bytes()).status_code == 200
    assert snapshot(root) == before


# ------------------------------------------------------------------------------------------------
# predict
# ------------------------------------------------------------------------------------------------
def test_predict_ranks_classes_and_shows_cam_stages_and_the_input(client, root, tmp_path):
    answer = predict(client, png_bytes(7, scale=5), top_k="4")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run"] == RUN and body["size"] == [140, 140] and len(body["top"]) == 4
    assert body["top"][0]["class"] == "class7"
    probs = [t["probability"] for t in body["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    seen = Image.open(io.BytesIO(_data(body["input"])))
    assert seen.size[0] >= 112 and seen.size[0] % 28 == 0  # the 28x28 model input, enlarged by whole pixels
    assert body["cam"]["class"] == "class7" and body["cam"]["target"] == 7
    assert Image.open(io.BytesIO(_data(body["cam"]["overlay"]))).mode == "RGB"
    stages = body["stages"]
    assert stages[0]["shape"] == [6, 24, 24] and stages[0]["image"].startswith("data:image/png;base64,")
    assert stages[-1]["shape"] == [10] and stages[-1]["image"] is None and stages[-1]["values"] is None
    low, high = stages[0]["values"]
    assert low <= high
    # the maps in colour (viridis), 4 white pixels apart: the first map's tile, then the gap
    tiles = np.asarray(Image.open(io.BytesIO(base64.b64decode(stages[0]["image"].split(",", 1)[1]))))
    assert tiles.ndim == 3 and tiles.shape[2] == 3
    side = 24 * 2  # 24x24 maps enlarged to at least 48 px
    assert (tiles[:side, side : side + 4] == 255).all() and not (tiles[:side, :side] == 255).all()
    assert len({tuple(p) for p in tiles[:side, :side].reshape(-1, 3)}) > 2  # colours, not black and white
    # the answer is cnnzoo predict's, for the same picture
    (tmp_path / "seven.png").write_bytes(png_bytes(7, scale=5))
    same = cnnzoo.load_model(root / RUN).predict(tmp_path / "seven.png", top_k=4)[0]
    assert [t["class"] for t in same["top"]] == [t["class"] for t in body["top"]]
    assert [t["probability"] for t in same["top"]] == pytest.approx(probs, abs=1e-5)
    assert body["warning"] == same["warning"]


def test_a_picture_unlike_the_training_data_carries_cnnzoo_predicts_warning(client):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    body = predict(client, buf.getvalue()).json()
    assert body["warning"] and "\n" not in body["warning"], body


def _data(url: str) -> bytes:
    assert url.startswith("data:image/png;base64,")
    return base64.b64decode(url.split(",", 1)[1])


def test_the_target_class_chooses_what_the_cam_explains(client):
    by_name = predict(client, png_bytes(3), target="class5").json()
    by_label = predict(client, png_bytes(3), target="5").json()
    assert by_name["cam"]["target"] == by_label["cam"]["target"] == 5 and by_name["top"][0]["class"] == "class3"
    assert by_name["cam"]["overlay"] == by_label["cam"]["overlay"]
    assert by_name["cam"]["overlay"] != predict(client, png_bytes(3)).json()["cam"]["overlay"]
    assert_error(predict(client, png_bytes(3), target="class99"), 400, "target 'class99' is not a class")


def test_uploads_are_judged_by_their_bytes_not_their_names(client):
    assert predict(client, png_bytes(3), name="notes.txt").json()["top"][0]["class"] == "class3"
    assert predict(client, png_bytes(3, fmt="JPEG"), name="photo.png").status_code == 200
    assert_error(predict(client, b"just some text, honestly\n" * 10, name="shoe.png"), 415, "not a picture")
    assert_error(predict(client, b"<svg xmlns='http://www.w3.org/2000/svg'/>", name="a.png"), 415, "not a picture")
    assert_error(predict(client, b"", name="empty.png"), 415, "empty")


def test_corrupt_images_and_bad_fields_are_one_clear_4xx(client):
    good = png_bytes(3)
    assert_error(predict(client, good[: len(good) // 2]), 400, "truncated or corrupt")
    assert_error(predict(client, good[:8] + b"\x00" * 200), 400, "shoe.png")
    assert_error(predict(client, good, top_k="0"), 400, "top_k")
    assert_error(predict(client, good, top_k="many"), 400, "top_k")
    assert_error(client.post("/api/predict", data={"run": RUN}), 400, "file")
    assert_error(client.post("/api/predict", files={"file": ("a.png", good)}), 400, "run")
    assert_error(client.post("/api/predict", content=b"not a form", headers={"content-type": "text/plain"}), 400)
    answer = client.post("/api/predict", files={"file": ("a.png", good)}, data={"run": "../../etc"})
    assert_error(answer, 404, "unknown run")


def test_an_oversize_upload_is_413_before_it_is_read(client):
    big = png_bytes(3) + b"\x00" * (11 * 1024 * 1024)
    assert_error(predict(client, big), 413, "10 MB limit")

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(12):
            yield b"\x00" * (1024 * 1024)

    answer = client.post("/api/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(answer, 413, "10 MB limit")


def test_a_small_limit_counts_the_file_itself(root):
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(noise, format="PNG")
    assert len(noise.getvalue()) > 2000 > len(png_bytes(3, scale=1))
    with TestClient(create_app(root, max_upload=2000), base_url="http://127.0.0.1") as c:
        assert_error(predict(c, noise.getvalue()), 413, "MB limit")
        assert predict(c, png_bytes(3, scale=1)).status_code == 200


def test_a_run_without_a_checkpoint_is_a_clear_error(client, root):
    half = root / "half"
    half.mkdir()
    shutil.copy(root / RUN / "config.json", half / "config.json")
    assert client.get("/api/runs/half").json()["status"] == "incomplete"
    assert_error(predict(client, png_bytes(3), run="half"), 400, "no last.pt")


def test_user_errors_map_to_4xx_statuses():
    assert status_of(NotFoundError("x")) == 404
    assert status_of(cnnzoo.base.errors.UnknownModelError("x")) == 404
    assert status_of(UploadTooLargeError("x")) == 413
    assert status_of(ImageError("x")) == 400 and status_of(ConfigError("x")) == 400
    assert status_of(CheckpointError("x")) == 400


def test_the_pages_load_directly_and_the_api_is_documented_offline(client):
    for page in ("/", "/zoo", "/zoo/vgg11", "/runs", f"/runs/{RUN}", "/try", "/side"):
        answer = client.get(page)
        assert answer.status_code == 200 and '<script src="/static/app.js">' in answer.text, page
    for asset in ("/", "/static/app.js", "/static/style.css", "/api"):
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        # nothing is fetched from elsewhere: no absolute or protocol-relative src/href/url(), no https at all
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""", answer.text), asset
        assert "https://" not in answer.text, asset
    spec = client.get("/openapi.json").json()
    assert {"/api/models", "/api/models/{name}", "/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/metrics",
            "/api/predict", "/api/inception-cost", "/api/runs/{run_id}/files/{name}"} <= set(spec["paths"])  # fmt: skip
    docs = client.get("/docs")  # FastAPI's interactive page, on a vendored swagger-ui instead of a CDN
    assert docs.status_code == 200 and "/openapi.json" in docs.text, docs.text[:200]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", docs.text) and "https://" not in docs.text
    for asset in re.findall(r"""(?:src|href)\s*=\s*["'](/static/[^"']+)""", docs.text):
        assert client.get(asset).status_code == 200, asset
    assert len(re.findall(r"/static/vendor/swagger-ui/swagger-ui", docs.text)) == 2
    api = client.get("/api").text  # the API page says /docs works (it once said it was off)
    assert '<a href="/docs">/docs</a>' in api and " is off" not in api
    assert client.get("/api/health").json()["ok"] is True


def test_create_app_refuses_a_root_that_is_not_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        create_app(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------
# a run being trained
# ------------------------------------------------------------------------------------------------
class _Watch(Callback):
    """Asks the studio for the run's metrics at every log interval of the training, as the Runs page polls."""

    def __init__(self, client, run_id):
        self.client, self.run_id, self.seen = client, run_id, []

    def on_log(self, state, totals):
        self.seen.append((state.epoch, totals.step, self.client.get(f"/api/runs/{self.run_id}/metrics").json()))


def test_a_run_being_trained_shows_its_live_rows(client, root, blocks, test_models, monkeypatch):
    import cnnzoo.train.loop

    monkeypatch.setattr(cnnzoo.train.loop, "LOG_EVERY", 2)  # a log interval every 2 of the epoch's 16 steps
    run = root / "live-run"
    run.mkdir()
    record = {"config": {"epochs": 2, "model": "tiny_test_net"}, "model": {"name": "tiny_test_net"}, "environment": {}}
    (run / "config.json").write_text(json.dumps(record))  # what a run writes before its first epoch ends
    config = resolve_config("tiny_test_net", "fast", {"epochs": 2, "batch_size": 32, "device": "cpu"})
    watch = _Watch(client, "live-run")
    with RunLock(run):
        assert client.get("/api/runs/live-run").json()["status"] == "training"
        fit(create_model("tiny_test_net"), blocks, config, callbacks=[LiveCurves(run, interval=0), watch])
    during = [m for _, step, m in watch.seen if step < 16]  # 16 steps an epoch: these are mid-epoch
    assert during and all(m["training"] for m in during)
    first = [m for epoch, step, m in watch.seen if epoch == 0 and step < 16]
    assert [len(m["live"]) for m in first] == list(range(1, len(first) + 1))  # a row more at every interval
    assert all(0 < r["fraction"] < 1 and r["epoch"] == 1 for r in first[-1]["live"])
    assert all(m["live_state"] == "training" for m in first)
    assert client.get("/api/runs/live-run/metrics").json()["training"] is False  # the lock is gone


def test_the_cli_prints_one_line_for_a_missing_extra_a_bad_path_and_a_busy_port(tmp_path, capsys, monkeypatch):
    import builtins

    assert main(["studio", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'nowhere'} does not exist: give a run directory or a directory of runs (default runs/)\n"
    )
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        assert main(["studio", str(tmp_path), "--port", str(busy.getsockname()[1])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is already in use: choose another with --port" in err
    finally:
        busy.close()
    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kw):
        if name in ("uvicorn", "fastapi") or name.startswith(("uvicorn.", "fastapi.")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    assert main(["studio", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: cnnzoo studio needs the studio extra: pip install 'cnnzoo[studio]'\n"


# ------------------------------------------------------------------------------------------------
# only its own address, and models run for its own pages only (DNS rebinding, cross-site posts)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.:1", ""])
def test_a_request_for_another_host_is_refused_before_anything_is_read(client, host):
    r = client.get("/api/runs", headers={"Host": host})
    assert r.status_code == 400 and "is not this studio's address" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8765", "[::1]:8000", "LOCALHOST"])
def test_its_own_names_are_served(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


def test_another_sites_page_cannot_run_a_model_but_the_studios_own_and_curl_can(client):
    files = {"file": ("x.png", png_bytes(3), "image/png")}
    other = client.post("/api/predict", files=files, data={"run": RUN}, headers={"Origin": "https://evil.example"})
    assert other.status_code == 403 and "another site's page" in other.json()["error"]
    spoofed = client.post("/api/predict", files=files, data={"run": RUN},
                          headers={"Origin": "http://127.0.0.1.evil.example"})  # fmt: skip
    assert spoofed.status_code == 403
    own = client.post("/api/predict", files=files, data={"run": RUN}, headers={"Origin": "http://127.0.0.1"})
    assert own.status_code == 200
    assert client.post("/api/predict", files=files, data={"run": RUN}).status_code == 200  # no Origin: curl


def test_a_studio_bound_to_every_address_takes_any_host(root):
    with TestClient(create_app(root, hosts=None), base_url="http://192.0.2.7") as c:
        assert c.get("/api/health").status_code == 200


def test_simultaneous_first_predictions_load_the_model_once(root, monkeypatch):
    import threading
    import time

    from cnnzoo.studio import inference

    slow = inference.load_model

    def slow_load(source, **kw):
        time.sleep(0.3)  # a large run's checkpoint: every request arrives while the first one loads
        return slow(source, **kw)

    monkeypatch.setattr(inference, "load_model", slow_load)
    cache = inference.ModelCache()
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(root / RUN))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 6 and cache.loads == 1 and len({id(p) for p, _ in got}) == 1


def test_the_confusion_matrix_as_numbers_and_the_pictures_behind_a_cell(client, trained_run, fake_train_data):
    import cnnzoo

    answer = client.get(f"/api/confusion/{RUN}")
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    matrix = torch.tensor(body["matrix"])
    run = cnnzoo.open_run(trained_run, device="cpu")  # what cnnzoo eval computes for the same checkpoint
    expected = cnnzoo.evaluate(run.model, run.data, run.config).confusion
    assert torch.equal(matrix, expected), (matrix, expected)
    true, predicted = divmod(int(torch.argmax(matrix * (1 - torch.eye(len(matrix), dtype=torch.int64)))), len(matrix))
    diagonal = client.get(f"/api/confusion/{RUN}/0/0?limit=5").json()
    assert diagonal["count"] == matrix[0, 0] and len(diagonal["images"]) == min(5, int(matrix[0, 0]))
    probabilities = [im["probability"] for im in diagonal["images"]]
    assert probabilities == sorted(probabilities, reverse=True)  # the most confident first
    assert all(im["image"].startswith("data:image/png;base64,") for im in diagonal["images"])
    cell = client.get(f"/api/confusion/{RUN}/{true}/{predicted}").json()
    assert cell["count"] == matrix[true, predicted]
    assert_error(client.get(f"/api/confusion/{RUN}/10/0"), 404, "no cell (10, 0)")
    assert_error(client.get("/api/confusion/no-such-run"), 404, "unknown run")


def test_an_upload_is_normalised_once_and_the_model_runs_twice(trained_run, monkeypatch):
    """One plain forward pass gives the prediction, the feature maps and Grad-CAM's layer; Grad-CAM adds its own
    pass. The answer is what `cnnzoo predict` and the explain functions say of the same picture."""
    from cnnzoo.explain import class_activation_maps, stage_activations
    from cnnzoo.studio.inference import predict_upload

    predictor = cnnzoo.load_model(trained_run, device="cpu")
    buffer = io.BytesIO()
    block_picture(3, scale=4, dark_on_light=True, mode="L").save(buffer, format="PNG")
    normalised, passes = [], []
    real_input = type(predictor).model_input
    monkeypatch.setattr(type(predictor), "model_input", lambda self, p: normalised.append(1) or real_input(self, p))
    hook = predictor.model.register_forward_pre_hook(lambda module, args: passes.append(1))
    try:
        answer = predict_upload(predictor, buffer.getvalue(), "shirt.png", top_k=3, target=None)
    finally:
        hook.remove()
    assert len(normalised) == 1 and len(passes) == 2
    monkeypatch.undo()
    prepared = predictor.prepare_bytes(buffer.getvalue(), "shirt.png")
    (expected,) = predictor.classify([prepared], top_k=3)
    assert [t["class"] for t in answer["top"]] == [t["class"] for t in expected["top"]]
    assert [t["probability"] for t in answer["top"]] == pytest.approx([t["probability"] for t in expected["top"]])
    assert answer["warning"] == expected["warning"]
    x = predictor.model_input(prepared.pixels.unsqueeze(0))
    cam = class_activation_maps(predictor.model, x)
    assert answer["cam"]["layer"] == cam.layer and answer["cam"]["target"] == cam.targets[0]
    assert [s["shape"] for s in answer["stages"]] == [list(s.shape[1:]) for s in stage_activations(predictor.model, x)]


def test_the_routes_take_the_run_index_as_a_dependency_a_test_can_swap(root, tmp_path):
    """The run index reaches the routes through FastAPI's dependencies (``RunsDep``), not app.state lookups in each
    route: swapping it swaps what every runs route and the predict route see."""
    from cnnzoo.studio.runs import RunIndex, run_index

    app = create_app(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    app.dependency_overrides[run_index] = lambda: RunIndex(empty)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/runs").json() == []
        assert c.get("/api/health").json()["root"] == str(empty)
        assert c.get(f"/api/runs/{RUN}").status_code == 404
        assert_error(predict(c, png_bytes()), 404)
    app.dependency_overrides.clear()
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert RUN in [r["id"] for r in c.get("/api/runs").json()]


# ------------------------------------------------------------------------------------------------
# the epoch scrubber
# ------------------------------------------------------------------------------------------------
def test_a_runs_snapshots_are_listed_with_each_epochs_accuracies(client, trained_run):
    answer = client.get(f"/api/runs/{RUN}/snapshots").json()
    assert answer["run"] == RUN and answer["epochs"] == 3 and len(answer["classes"]) == 10
    assert [s["epoch"] for s in answer["snapshots"]] == [1, 2, 3]
    metrics = client.get(f"/api/runs/{RUN}/metrics").json()["epochs"]
    assert [s["test_accuracy"] for s in answer["snapshots"]] == pytest.approx([r["test_acc"] for r in metrics])
    assert all(len(s["per_class"]) == 10 for s in answer["snapshots"])


def test_the_first_layers_filters_after_each_epoch(client):
    first = client.get(f"/api/runs/{RUN}/snapshots/1/filters").json()
    last = client.get(f"/api/runs/{RUN}/snapshots/3/filters").json()
    assert first["layer"] == "0" and first["shape"] == [6, 1, 5, 5] and first["shown"] == 6
    assert first["image"].startswith("data:image/png;base64,") and first["image"] != last["image"]
    assert first["values"][0] < 0 < first["values"][1]
    assert_error(client.get(f"/api/runs/{RUN}/snapshots/7/filters"), 404, "no snapshot of epoch 7", "1, 2, 3")


def test_a_prediction_at_an_epoch_uses_that_snapshot_and_the_last_one_is_the_final_model(client):
    picture = png_bytes(4, scale=5)
    final = predict(client, picture).json()
    at = {e: predict(client, picture, epoch=str(e)).json() for e in (1, 3)}
    assert at[1]["epoch"] == 1 and final["epoch"] is None
    assert at[3]["top"][0]["class"] == final["top"][0]["class"]
    assert at[3]["top"][0]["probability"] == pytest.approx(final["top"][0]["probability"], abs=0.01)  # fp16
    assert at[1]["top"][0]["probability"] != pytest.approx(final["top"][0]["probability"], abs=1e-4)
    assert_error(predict(client, picture, epoch="9"), 404, "no snapshot of epoch 9")
    answer = client.post("/api/predict", files={"file": ("a.png", picture)}, data={"weight": "x", "epoch": "1"})
    assert_error(answer, 400, "epoch goes with run")


# ------------------------------------------------------------------------------------------------
# the convolution's arithmetic
# ------------------------------------------------------------------------------------------------
def arithmetic(client, data: bytes, **form):
    return client.post("/api/arithmetic", files={"file": ("a.png", data)}, data={"run": RUN, **form})


def test_the_arithmetic_of_a_value_lists_the_layers_and_equals_the_forward_pass(client):
    answer = arithmetic(client, png_bytes(2)).json()
    assert [u["kind"] for u in answer["layers"]] == ["conv", "pool", "conv", "pool"]
    assert answer["layer"]["name"] == "0" and answer["layer"]["image"].startswith("data:image/png")
    layout = answer["layer"]["layout"]
    assert layout["count"] == 6 and layout["width"] * layout["factor"] >= 120
    a = answer["arithmetic"]
    assert a["at"] == {"channel": 0, "y": 12, "x": 12}  # the middle of the first 24x24 map by default
    assert a["total"] == pytest.approx(a["value"], abs=1e-6) and a["batchnorm"] and a["activation"]["name"] == "sigmoid"
    pool = arithmetic(client, png_bytes(2), layer="3", channel="5", y="1", x="2").json()["arithmetic"]
    assert pool["op"] == "mean" and pool["counted"] == 4 and pool["total"] == pytest.approx(pool["value"])
    at_epoch = arithmetic(client, png_bytes(2), epoch="1").json()
    assert at_epoch["epoch"] == 1 and at_epoch["arithmetic"]["value"] != a["value"]  # the network after epoch 1


def test_the_arithmetic_refuses_a_layer_or_a_position_it_does_not_have(client):
    assert_error(arithmetic(client, png_bytes(2), layer="9"), 404, "no layer '9'")
    assert_error(arithmetic(client, png_bytes(2), channel="6"), 400, "channel 6", "outside it")
    assert_error(arithmetic(client, b"not a picture"), 415, "not a picture")


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_models_zoo_page_has_its_book_ties_and_shape_traces(client, name):
    info = cnnzoo.get_model_info(name)  # what GET /api/models/NAME answers as "book" (one model asks the route)
    book = client.get(f"/api/models/{name}").json()["book"] if name == "googlenet" else \
        zoo.book_ties(name, info.family, info.description)  # fmt: skip
    trace = book["trace"]
    assert trace["live"] and all("output shape:" in line for line in trace["live"])
    if trace["printed"] is not None:  # what the book printed is what cnnzoo's network gives
        assert trace["printed"] == trace["live"]
    assert (book["section"] is None) == (name.startswith("speednet"))  # every network of the book has its section


def test_the_model_cache_holds_a_runs_snapshots_within_its_byte_budget_and_lets_the_threads_be_re_decided(root):
    polled = []

    class Governor:
        def poll(self):
            polled.append(1)

    cache = ModelCache(size=12, threads=Governor())
    for epoch in (1, 2, 3, 1, 2, 3):  # a scrubber there and back: loaded once each, with the final model
        cache.get(root / RUN, epoch)
    assert cache.loads == 4 and len(polled) >= 6
    one = cache.bytes() // 4
    small = ModelCache(size=12, max_bytes=2 * one)
    for epoch in (1, 2, 3):
        small.get(root / RUN, epoch)
    assert small.bytes() <= 2 * one and len(small._items) == 2  # the least recently used went first
