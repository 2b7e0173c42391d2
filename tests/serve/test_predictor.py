"""``cnnzoo.load_model``: a trained run in one call, classifying files, directories and patterns in batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnzoo
from cnnzoo.base.errors import ImageError
from cnnzoo.cli import main
from cnnzoo.serve import predictor as predictor_mod
from helpers_files import block_picture, picture_folder, save


def test_load_model_classifies_a_directory_and_a_pattern_in_one_call(trained_run, tmp_path):
    model = cnnzoo.load_model(trained_run)
    assert isinstance(model, cnnzoo.Predictor) and model.classes[0] == "class0" and model.input_size == 28
    assert model.checkpoint == trained_run / "last.pt" and not model.model.training
    pictures = picture_folder(tmp_path / "pics")
    records = model.predict([pictures, str(tmp_path / "pics" / "class[07].png")], top_k=2)
    names = [r["image"].rsplit("/", 1)[1] for r in records]
    assert names == ["class0.png", "class3.png", "class7.png", "class9.png", "class0.png", "class7.png"]
    assert [r["top"][0]["class"] for r in records[:4]] == ["class0", "class3", "class7", "class9"]
    assert all(len(r["top"]) == 2 for r in records)
    assert [r["inverted"] for r in records[:4]] == [False, True, True, True]


def test_many_pictures_go_through_in_batches_with_the_same_answers(trained_run, tmp_path, monkeypatch):
    pictures = picture_folder(tmp_path / "pics")
    model = cnnzoo.load_model(trained_run / "best.pt")
    whole = model.predict(pictures)
    monkeypatch.setattr(predictor_mod, "BATCH", 3)  # 4 pictures: a batch of 3, then one of 1
    parts = model.predict(pictures)
    assert [r["image"] for r in parts] == [r["image"] for r in whole]
    assert [[t["class"] for t in r["top"]] for r in parts] == [[t["class"] for t in r["top"]] for r in whole]
    for a, b in zip(parts, whole):  # another batch size may take another kernel: equal to float rounding
        assert [t["probability"] for t in a["top"]] == pytest.approx([t["probability"] for t in b["top"]], abs=1e-5)


def test_an_empty_directory_or_a_pattern_matching_nothing_is_one_clear_error(trained_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="no images in this directory"):
        cnnzoo.load_model(trained_run).predict(empty)
    assert main(["predict", str(trained_run), str(tmp_path / "*.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "the pattern matches no file" in err[0]


def test_the_cli_takes_a_directory(trained_run, tmp_path, capsys):
    pictures = picture_folder(tmp_path / "pics")
    assert main(["predict", str(trained_run), str(pictures), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["top"][0]["class"] for r in records] == ["class0", "class3", "class7", "class9"]


def test_save_input_writes_exactly_what_the_model_sees_and_refuses_a_foreign_file(trained_run, tmp_path, capsys):
    pictures = picture_folder(tmp_path / "pics", classes=(3, 7))
    seen = tmp_path / "seen"
    model = cnnzoo.load_model(trained_run)
    records = model.predict(pictures, save_input=seen)
    assert sorted(p.name for p in seen.iterdir()) == ["0001-class3.png", "0002-class7.png"]
    for record, picture in zip(records, sorted(pictures.glob("*.png"))):
        saved = np.asarray(Image.open(record["input"]))
        assert saved.shape == (28, 28) and np.array_equal(saved, model.prepare(picture).pixels[0].numpy())
    assert main(["predict", str(trained_run), str(pictures), "--save-input", str(seen)]) == 0  # its own files
    assert "what the model saw: 2 PNG(s)" in capsys.readouterr().out
    foreign = seen / "0001-class3.png"
    foreign.write_bytes(b"the user's own file")
    before = sorted((p.name, p.read_bytes()) for p in seen.iterdir())
    assert main(["predict", str(trained_run), str(pictures), "--save-input", str(seen)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0001-class3.png exists and is not a PNG figure cnnzoo wrote" in err[0], err
    assert sorted((p.name, p.read_bytes()) for p in seen.iterdir()) == before  # nothing written, not even the other


def test_predict_takes_pictures_in_memory_with_the_layouts_it_documents(tmp_path):
    """A path, its bytes, a PIL image, a NumPy array (HWC, uint8 or float 0-1) and a tensor (CHW) of the same
    picture get the same answer; an array that is no picture is one line."""
    import numpy as np
    import torch
    from PIL import Image

    import cnnzoo
    from cnnzoo.base.errors import ImageError

    path = tmp_path / "trousers.png"
    image = Image.new("RGB", (60, 80), (235, 232, 225))
    for x in (15, 33):
        image.paste((40, 40, 70), (x, 5, x + 12, 75))
    image.save(path)
    model = cnnzoo.load_model("lenet_bn.fashion_mnist")
    array = np.asarray(image)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
    forms = [path, path.read_bytes(), image, array, array / 255.0, tensor, tensor.float() / 255]
    records = model.predict(forms, top_k=2)
    assert [r["image"] for r in records][:2] == [str(path), "picture 2"]
    first = records[0]["top"]
    for r in records[1:]:
        assert [t["class"] for t in r["top"]] == [t["class"] for t in first]
        assert r["top"][0]["probability"] == pytest.approx(first[0]["probability"], abs=2e-3)  # float rounding
    assert model.predict(image)[0]["image"] == "picture 1"  # one picture alone
    with pytest.raises(ImageError, match=r"shape \[2, 3, 4, 5\] is not a picture"):
        model.predict(np.zeros((2, 3, 4, 5)))


def test_save_input_leaves_nothing_behind_when_a_later_picture_fails_and_never_writes_an_input(
    trained_run, tmp_path, monkeypatch
):
    import cnnzoo.serve.predictor as predictor_mod
    from cnnzoo.base.errors import ImageError, OutputError

    monkeypatch.setattr(predictor_mod, "BATCH", 2)  # the bad picture comes in the second batch
    pictures = picture_folder(tmp_path / "pics", classes=(3, 7, 9))
    (pictures / "zz-broken.png").write_bytes(b"not a picture")
    model = cnnzoo.load_model(trained_run)
    seen = tmp_path / "seen"
    with pytest.raises(ImageError):
        model.predict(pictures, save_input=seen)
    assert list(seen.iterdir()) == []  # the first batch's two files were taken back
    first = sorted(pictures.glob("*.png"))[0]
    inputs = tmp_path / "inputs"  # the first picture's input file would be named as the second picture is
    inputs.mkdir()
    (inputs / "a.png").write_bytes(first.read_bytes())
    clash = inputs / "0001-a.png"
    clash.write_bytes(b"the user's second picture")
    with pytest.raises(OutputError, match="one of the pictures being read"):
        model.predict([inputs / "a.png", clash], save_input=inputs)
    assert clash.read_bytes() == b"the user's second picture"
    with pytest.raises(OutputError, match="--save-input is empty"):
        model.predict(pictures, save_input="")


def _histogram(confidences, correct):
    """A confidence histogram of predictions with these top probabilities, right where ``correct``."""
    import torch

    from cnnzoo.train.metrics import confidence_histogram

    p = torch.tensor(confidences, dtype=torch.float64)
    rest = (1 - p) / 9
    probs = torch.cat([p[:, None], rest[:, None].expand(-1, 9)], dim=1)
    targets = torch.where(torch.tensor(correct), 0, 1)
    return confidence_histogram(probs.log(), targets)


def test_the_low_confidence_bound_is_where_the_validation_predictions_were_a_coin_flip():
    from cnnzoo.train.metrics import low_confidence_bound

    # 40 predictions at 0.355 right 10 times, 60 at 0.555 right 36 times, 900 at 0.955 all right: below 0.36 they
    # were right 25 % of the time, below 0.56 46 % (46 of 100), below 0.96 94 %.
    hist = _histogram(
        [0.355] * 40 + [0.555] * 60 + [0.955] * 900,
        [True] * 10 + [False] * 30 + [True] * 36 + [False] * 24 + [True] * 900,
    )
    assert hist.sum(dim=1).tolist() == [1000, 946]
    assert low_confidence_bound(hist) == 0.56
    # too few unsure predictions to say anything: no bound of its own
    assert low_confidence_bound(_histogram([0.355] * 10 + [0.955] * 900, [False] * 10 + [True] * 900)) is None
    assert low_confidence_bound(None) is None


def test_a_model_warns_below_its_own_bound_or_the_fallback_for_its_label_smoothing(trained_run, tmp_path):
    import torch

    from cnnzoo.base.errors import CheckpointError
    from cnnzoo.serve.predictor import LOW_CONFIDENCE, LOW_CONFIDENCE_SMOOTHED, low_confidence_of
    from cnnzoo.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_run / "last.pt")
    assert "low_confidence" in ckpt["preprocess"]  # recorded from the validation split (None: too few unsure)
    pre = {**ckpt["preprocess"], "low_confidence": None}
    assert low_confidence_of({**ckpt, "preprocess": pre}) == LOW_CONFIDENCE_SMOOTHED  # the fast recipe smooths
    unsmoothed = {**ckpt, "preprocess": pre, "config": {**ckpt["config"], "label_smoothing": 0.0}}
    assert low_confidence_of(unsmoothed) == LOW_CONFIDENCE
    assert low_confidence_of({**ckpt, "preprocess": {**pre, "low_confidence": 0.62}}) == 0.62

    # its own bound decides the warning: the same picture and probability, flagged at 0.99 and not at 0.01
    mine = tmp_path / "mine.pt"
    picture = save(tmp_path, "p.png", block_picture(3, scale=1, dark_on_light=False, mode="L"))
    for bound, flagged in ((0.99, True), (0.01, False)):
        torch.save({**ckpt, "preprocess": {**pre, "low_confidence": bound}}, mine)
        model = cnnzoo.load_model(mine, invert="no", preprocess="none")
        model.check = False  # the picture's own warnings (its look) would come first
        (record,) = model.predict(picture)
        assert (record["warning"] is not None and "low confidence" in record["warning"]) is flagged, record
    torch.save({**ckpt, "preprocess": {**pre, "low_confidence": 7}}, mine)
    with pytest.raises(CheckpointError, match=r"preprocess\.low_confidence"):
        cnnzoo.load_model(mine)


def test_the_shipped_weights_carry_their_own_bound():
    from cnnzoo.weights import list_weights

    for weight in list_weights():
        bound = weight.meta.get("low_confidence")
        assert bound is not None and 0 < bound < 1, (weight.name, bound)
        if weight.shipped:  # the others' files are built or fetched first
            assert cnnzoo.load_model(weight.name).low_confidence == bound, weight.name
