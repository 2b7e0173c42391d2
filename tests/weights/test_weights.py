"""Named trained weights (cnnzoo.weights): the registry against its files and cards, the shipped weights
re-evaluated to their cards' figures, one line to use them everywhere a run directory goes, and the ways to get
a weight that is not shipped (fetch from a local mirror, build with its own command)."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo.base.errors import CheckpointError, ConfigError, DataNotFoundError
from cnnzoo.cli import main
from cnnzoo.run import open_run
from cnnzoo.run.setup import with_validation
from cnnzoo.train.config import config_from_dict
from cnnzoo.weights import catalog, get_weight, list_weights, weight_checkpoint
from cnnzoo.weights.cards import DOCS, render_card, render_table
from cnnzoo.weights.files import built_record, cached_file
from cnnzoo.weights.obtain import fetch_weight
from cnnzoo.weights.publish import evaluate_fp32, first_test_images, publish_runs, read_seed_run
from cnnzoo.weights.storage import decode, encode
from helpers_http import serve

from conftest import HAVE_REAL_DATA

SHIPPED = [w for w in list_weights() if w.shipped]
BUDGET = 30_000_000  # the budget for every shipped file together
needs_data = pytest.mark.skipif(not HAVE_REAL_DATA, reason="needs Fashion-MNIST (make data)")


# ------------------------------------------------------------------------------------------------
# the registry, its files and its cards
# ------------------------------------------------------------------------------------------------
def test_every_family_of_the_book_that_has_a_weight_is_named_by_its_model_and_dataset():
    assert {"lenet", "lenet_bn", "speednet"} <= {w.model for w in list_weights()}
    for w in list_weights():
        assert w.name.startswith(w.model) and w.name.endswith(".fashion_mnist")
        side = cnnzoo.get_model_info(w.model).default_input_size
        assert (f"@{w.input_size}." in w.name) == (w.input_size != side), w.name


@pytest.mark.parametrize("weight", SHIPPED, ids=lambda w: w.name)
def test_a_shipped_file_has_the_size_and_sha256_its_registry_entry_and_card_say(weight):
    path = catalog.FILES_DIR / weight.file
    data = path.read_bytes()
    assert len(data) == weight.bytes
    assert hashlib.sha256(data).hexdigest() == weight.sha256
    card = (DOCS / "weights" / f"{weight.name}.md").read_text(encoding="utf-8")
    assert weight.sha256 in card and f"**{weight.test_acc:.4f}**" in card
    _, header = decode(data)
    assert header["cnnzoo.weight"] == weight.name and header["cnnzoo.storage"] == weight.storage


def test_the_shipped_files_stay_within_their_budget():
    assert sum(w.bytes for w in SHIPPED) <= BUDGET


@pytest.mark.parametrize("weight", list_weights(), ids=lambda w: w.name)
def test_each_card_is_generated_from_the_registry_with_its_pictures(weight):
    card = DOCS / "weights" / f"{weight.name}.md"
    assert card.read_text(encoding="utf-8") == render_card(weight), "regenerate: benchmarks/weights/publish.py"
    for kind in ("curves", "confusion", "top-losses"):
        assert (DOCS / "weights" / "images" / f"{weight.name}-{kind}.png").is_file()


def test_the_table_of_weights_is_generated_from_the_registry():
    assert (DOCS / "weights.md").read_text(encoding="utf-8") == render_table(list_weights())


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("weight", SHIPPED, ids=lambda w: w.name)
def test_a_shipped_weight_evaluates_to_its_cards_test_accuracy_exactly(weight):
    run = open_run(weight.name)  # the data, split and preparation the card was measured with, in fp32
    if weight.meta["macs"] > 5e6:  # a large network: the card's count on its first 2,000 test images, exactly
        sample = evaluate_fp32(run.model, first_test_images(run.data), run.config, "test")
        assert int(sample.confusion.diagonal().sum()) == weight.meta["sample"]["correct"]
        return
    result = evaluate_fp32(run.model, run.data, run.config, "test")
    assert f"{result.accuracy:.4f}" == f"{weight.test_acc:.4f}"
    assert int(result.confusion.diagonal().sum()) == round(weight.test_acc * result.count)


# ------------------------------------------------------------------------------------------------
# one line to use them
# ------------------------------------------------------------------------------------------------
def test_create_model_with_weights_takes_a_dataset_a_full_name_default_or_a_weight():
    ways = ["fashion_mnist", "lenet_bn.fashion_mnist", "DEFAULT", get_weight("lenet_bn.fashion_mnist")]
    states = [cnnzoo.create_model("lenet_bn", weights=w).state_dict() for w in ways]
    for state in states[1:]:
        assert all(torch.equal(state[k], states[0][k]) for k in state)
    model = cnnzoo.create_model("lenet_bn", weights="fashion_mnist")
    assert model.weights.name == "lenet_bn.fashion_mnist" and model.training  # as torchvision's come
    fresh = cnnzoo.create_model("lenet_bn")
    assert not torch.equal(fresh.state_dict()["net.0.weight"] if "net.0.weight" in fresh.state_dict() else
                           next(iter(fresh.parameters())), next(iter(model.parameters())))  # fmt: skip


def test_weights_that_do_not_fit_are_one_line_errors():
    with pytest.raises(ConfigError, match="drop num_classes"):
        cnnzoo.create_model("lenet_bn", weights="fashion_mnist", num_classes=3)
    with pytest.raises(ConfigError, match="are lenet's, not lenet_bn's"):
        cnnzoo.create_model("lenet_bn", weights="lenet.fashion_mnist")
    with pytest.raises(ConfigError, match=r"did you mean lenet_bn\.fashion_mnist"):
        cnnzoo.create_model("lenet_bn", weights="fashion_mnst")


def test_load_model_by_name_predicts_like_the_module_create_model_builds(tmp_path):
    picture = tmp_path / "shirt.png"
    from PIL import Image

    Image.new("L", (56, 56), 30).save(picture)
    predictor = cnnzoo.load_model("lenet_bn.fashion_mnist")
    assert predictor.weight == predictor.name == "lenet_bn.fashion_mnist"
    record = predictor.predict(picture, top_k=2)[0]
    x = predictor.model_input(predictor.prepare(picture).pixels.unsqueeze(0))
    model = cnnzoo.create_model("lenet_bn", weights="fashion_mnist").eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0].max().item()
    assert record["top"][0]["probability"] == pytest.approx(expected, rel=1e-5)


@needs_data
def test_the_cli_takes_a_weight_wherever_it_takes_a_run(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 80), (230, 230, 230)).save("shoe.png")
    assert main(["predict", "lenet_bn.fashion_mnist", "shoe.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"]
    assert main(["explain", "lenet_bn.fashion_mnist", "shoe.png"]) == 0
    assert {p.name for p in (tmp_path / "explain-lenet_bn.fashion_mnist").iterdir()} >= {"shoe-cam.png", "filters.png"}
    assert main(["export", "lenet_bn.fashion_mnist", "--format", "safetensors"]) == 0
    assert (tmp_path / "lenet_bn.fashion_mnist.safetensors").is_file()
    capsys.readouterr()
    assert main(["eval", "lenet_bn.fashion_mnist", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    card = get_weight("lenet_bn.fashion_mnist").test_acc
    assert f"test acc {card:.4f}" in out and f"its card says {card:.4f}: the same" in out
    assert (tmp_path / "eval-lenet_bn.fashion_mnist-confusion.png").is_file()
    assert sorted(p.name for p in catalog.FILES_DIR.iterdir()) == sorted(w.file for w in SHIPPED)  # untouched


def test_an_unknown_weight_name_suggests_the_close_one_and_a_missing_file_stays_a_missing_file(tmp_path, capsys):
    assert main(["predict", "lenet_bn.fashion_mnst", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no weight named 'lenet_bn.fashion_mnst': did you mean lenet_bn.fashion_mnist")
    assert main(["predict", str(tmp_path / "last.pt"), str(tmp_path / "x.png")]) == 2
    assert "no such run directory or checkpoint" in capsys.readouterr().err


def test_a_directory_named_like_a_weight_is_that_directory(tmp_path, monkeypatch, capsys, trained_run):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained_run, tmp_path / "lenet_bn.fashion_mnist")
    predictor = cnnzoo.load_model("lenet_bn.fashion_mnist")
    assert predictor.weight is None and predictor.checkpoint == Path("lenet_bn.fashion_mnist") / "last.pt"


def test_cnnzoo_weights_lists_every_weight_with_its_figures(capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for w in list_weights():
        assert w.name in out and f"{w.test_acc:.4f}" in out
    assert str(catalog.FILES_DIR) in out and "try one: cnnzoo predict" in out
    assert main(["weights", "--json"]) == 0
    assert {e["name"] for e in json.loads(capsys.readouterr().out)} == {w.name for w in list_weights()}


def test_torch_hub_loads_the_trained_weights():
    repo = Path(__file__).resolve().parents[2]
    model = torch.hub.load(str(repo), "lenet_bn", source="local", pretrained=True)
    same = torch.hub.load(str(repo), "lenet_bn", source="local", weights="fashion_mnist")
    assert model.weights.name == same.weights.name == "lenet_bn.fashion_mnist"
    with pytest.raises(ConfigError, match="no trained weights for vgg11 yet"):
        torch.hub.load(str(repo), "vgg11", source="local", weights="fashion_mnist")


# ------------------------------------------------------------------------------------------------
# the file format
# ------------------------------------------------------------------------------------------------
def test_storage_round_trips_fp32_exactly_and_fp16_int8_closely():
    torch.manual_seed(0)
    state = {
        "conv.weight": torch.randn(8, 3, 3, 3),
        "conv.bias": torch.randn(8),
        "bn.num_batches_tracked": torch.tensor(7),
    }
    back, header = decode(encode(state, "fp32", {"k": "v"}))
    assert header["k"] == "v" and all(torch.equal(back[k], state[k]) for k in state)
    half, _ = decode(encode(state, "fp16", {}))
    assert torch.allclose(half["conv.weight"], state["conv.weight"], rtol=1e-3, atol=1e-3)
    q, _ = decode(encode(state, "int8", {}))
    step = state["conv.weight"].abs().amax(dim=(1, 2, 3)) / 127  # per output channel
    assert ((q["conv.weight"] - state["conv.weight"]).abs() <= step.view(-1, 1, 1, 1) / 2 + 1e-7).all()
    assert torch.equal(q["conv.bias"], state["conv.bias"]) and q["bn.num_batches_tracked"].item() == 7
    assert len(encode(state, "int8", {})) < len(encode(state, "fp32", {}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 4, "too short"),
        ((2**40).to_bytes(8, "little") + b"{}", "impossible"),
        ((2).to_bytes(8, "little") + b"[]", "not a cnnzoo weight file"),
        ((5).to_bytes(8, "little") + b"nope!", "not JSON"),
    ],
)
def test_a_file_that_is_not_a_weight_file_is_refused_in_one_line(data, message):
    with pytest.raises(CheckpointError, match=message):
        decode(data)


# ------------------------------------------------------------------------------------------------
# a weight that is not shipped: fetched from a mirror, or built here
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def unshipped(trained_run, blocks, monkeypatch, tmp_path):
    """A weight published from the blocks run, not shipped, in a private catalog and cache; its file's bytes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = config_from_dict(json.loads((trained_run / "config.json").read_text())["config"])
    blocks = with_validation(blocks, config)  # the split the run trained with
    run = read_seed_run(trained_run, blocks)
    command = "cnnzoo train lenet_bn --epochs 1 --batch-size 64 --lr 0.2 --augment none --seed {seed}"
    entry, blob = publish_runs([run], blocks, storage="fp16", shipped=False, command=command)
    weight = catalog.Weight.from_dict(entry)
    monkeypatch.setattr(catalog, "_catalog", lambda: {weight.name: weight})
    return weight, blob


@contextmanager
def mirror(files: dict[str, bytes], tmp: Path):
    """A local HTTP server on 127.0.0.1 serving ``files`` by name (the data layer's test server)."""
    folder = tmp / f"mirror-{len(list(tmp.glob('mirror-*')))}"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with serve(folder) as url:
        yield url


def test_a_weight_that_is_not_here_says_how_to_get_it(unshipped, capsys):
    weight, _ = unshipped
    assert main(["eval", weight.name]) == 2
    err = capsys.readouterr().err
    assert f"cnnzoo weights build {weight.name}" in err and f"cnnzoo weights fetch {weight.name} --mirror URL" in err


def test_fetch_keeps_the_file_only_when_its_sha256_is_the_catalogs(unshipped, capsys, tmp_path):
    weight, blob = unshipped
    with (
        mirror({weight.file: blob[:-1] + bytes([blob[-1] ^ 1])}, tmp_path) as url,
        pytest.raises(DataNotFoundError, match="not the catalog's"),
    ):
        fetch_weight(weight, url, progress=False)
    assert not any(cached_file(weight).parent.iterdir())  # no partial file left behind
    with mirror({weight.file: blob + b"x" * 100}, tmp_path) as url:  # more than its size: abandoned while it arrives
        assert main(["weights", "fetch", weight.name, "--mirror", url]) == 2
    assert "could not fetch" in capsys.readouterr().err
    with mirror({weight.file: blob}, tmp_path) as url:
        assert main(["weights", "fetch", weight.name, "--mirror", url]) == 0
    assert cached_file(weight).read_bytes() == blob
    model = cnnzoo.create_model("lenet_bn", weights=weight.name)
    assert model.weights is weight


def test_a_fetched_file_changed_on_disk_is_refused(unshipped):
    weight, blob = unshipped
    path = cached_file(weight)
    path.parent.mkdir(parents=True)
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match=r"SHA-256 .* is not"):
        weight_checkpoint(weight)


@pytest.mark.slow
def test_build_trains_the_cards_command_and_records_its_own_figures(unshipped, fake_train_data, capsys):
    weight, _ = unshipped
    assert main(["weights", "build", weight.name]) == 0
    out = capsys.readouterr().out
    assert f"building {weight.name}: cnnzoo train lenet_bn --epochs 1" in out and f"built {weight.name}" in out
    record = json.loads(built_record(weight).read_text())
    assert record["sha256"] == hashlib.sha256(cached_file(weight).read_bytes()).hexdigest()
    assert main(["weights"]) == 0 and "built here" in capsys.readouterr().out
    assert cnnzoo.load_model(weight.name).weight == weight.name  # its own file, checked against its record
    assert main(["weights", "build", weight.name]) == 0  # finished already: stored again, not retrained
    assert "finished already" in capsys.readouterr().out


def test_shipped_weights_need_no_build_or_fetch(capsys):
    name = SHIPPED[0].name
    assert main(["weights", "build", name]) == 2
    assert "is shipped with cnnzoo" in capsys.readouterr().err
    assert main(["weights", "fetch", name, "--mirror", "http://127.0.0.1:9/"]) == 2


def test_a_shipped_file_changed_on_disk_is_refused(monkeypatch, tmp_path):
    weight = SHIPPED[0]
    data = bytearray((catalog.FILES_DIR / weight.file).read_bytes())
    data[-1] ^= 1
    (tmp_path / weight.file).write_bytes(bytes(data))
    monkeypatch.setattr("cnnzoo.weights.files.FILES_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="reinstall cnnzoo"):
        weight_checkpoint(weight)
    os.unlink(tmp_path / weight.file)
    with pytest.raises(CheckpointError, match="is missing"):
        weight_checkpoint(weight)


@pytest.mark.slow
def test_the_wheel_carries_the_registry_and_every_shipped_file(tmp_path):
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[2]
    argv = ["wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path), str(repo)]
    done = subprocess.run([sys.executable, "-m", "pip", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("cnnzoo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "cnnzoo/weights/catalog.json" in names
        for w in SHIPPED:
            assert hashlib.sha256(z.read(f"cnnzoo/weights/files/{w.file}")).hexdigest() == w.sha256


def test_a_weight_file_has_the_same_bytes_for_the_same_weights():
    """safetensors' own writer orders the header by a hash: the same weights would get a new SHA-256 each time."""
    state = {"b.weight": torch.ones(2, 2), "a.bias": torch.zeros(3)}
    files = {encode(state, "fp16", {"x": "1", "y": "2"}) for _ in range(5)} | {
        encode(state, "fp16", {"y": "2", "x": "1"})
    }
    assert len(files) == 1
    from safetensors.torch import load

    assert set(load(files.pop())) == {"a.bias", "b.weight"}  # safetensors itself reads it


def test_a_weights_low_confidence_bound_comes_from_one_view_at_a_time(monkeypatch):
    # cnnzoo predict and the studio show one view, so the bound that flags their unsure answers must come
    # from one view too, whatever test-time views the card's accuracy uses
    from cnnzoo.train.recipes import resolve_config
    from cnnzoo.train.state import EvalResult
    from cnnzoo.weights import publish

    seen = []
    confidence = torch.zeros(2, 100, dtype=torch.long)
    confidence[0, :25], confidence[1, :25] = 8, 2  # 200 predictions below 0.25, right a quarter of the time

    def fake_eval(model, data, config, split):
        seen.append((config.tta, split))
        return EvalResult(accuracy=0.9, loss=0.3, count=200, confusion=torch.eye(2), seconds=0.0,
                          confidence=confidence)  # fmt: skip

    monkeypatch.setattr(publish, "evaluate_fp32", fake_eval)
    with_views = resolve_config("speednet", "record")
    assert publish.single_view_bound(None, None, with_views) == 0.25 and seen == [("none", "val")]
    given = fake_eval(None, None, resolve_config("speednet"), "val")
    seen.clear()
    assert publish.single_view_bound(None, None, resolve_config("speednet"), given) == 0.25 and seen == []
    publish.single_view_bound(None, None, with_views, given)  # an evaluation made with views is not reused
    assert seen == [("none", "val")]
