"""The onnx-float32 compression of a text classifier, on the demo sentiment model's real weights: the
exported graph reads as the source does (alone and in padded batches, and for the explanations'
masked token ids), the served predictor is the one an export is registered as, and an export that
was changed after Steward wrote it, or that a user uploads as their own, is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from inference.ml import artifacts, compression, predictors
from inference.ml.schema import InputError

DATA = Path(__file__).resolve().parents[3] / "data"


def sst2(count: int) -> list[str]:
    lines = (DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:count + 1]
    return [line.split("\t", 1)[1] for line in lines]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(the source folder, its onnx-float32 export)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inference.ml.demos import SENTIMENT, build_cached

    source, _ = build_cached(SENTIMENT, lambda *a: None, settings.BUILD_CACHE_DIR)
    import torch

    out = tmp_path_factory.mktemp("onnx") / "model"
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    padded = tokenizer(sst2(8), padding=True, return_tensors="pt")
    with torch.inference_mode():
        before = model(**padded).logits
    document = compression.export_onnx(model, tokenizer, source, out, source_sha256="f" * 64)
    assert document["method"] == "onnx-float32" and document["source_sha256"] == "f" * 64
    with torch.inference_mode():  # the model it was given is left as it was (tracing changes the module traced)
        assert torch.equal(model(**padded).logits, before)
    return source, out


def test_the_exported_graph_reads_as_the_source_alone_and_in_batches(exported) -> None:
    source, out = exported
    reference, served = predictors.TextClassifier(), predictors.OnnxTextClassifier()
    reference.load(source, "cpu")
    served.load(out, "cpu")
    assert served.labels == reference.labels and served.device == "cpu"
    texts = sst2(24)
    batched, expected = served.predict_proba(texts), reference.predict_proba(texts)
    assert np.allclose(batched, expected, atol=1e-5)
    alone = np.concatenate([served.predict_proba([text]) for text in texts])
    assert np.allclose(alone, batched, atol=1e-5)  # the same answer whichever batch a text falls in
    assert (alone.argmax(axis=1) == expected.argmax(axis=1)).all()
    # the explanations' path: rows of token ids of one length, no attention mask nor segment ids given
    ids = reference.tokenizer([texts[0]] * 3)["input_ids"]
    ids[1][2] = ids[2][3] = reference.tokenizer.mask_token_id
    assert np.allclose(served.proba_from_ids(ids), reference.proba_from_ids(ids), atol=1e-5)
    # a file of float32 weights, about the source's size
    assert served.memory_bytes() == pytest.approx(reference.memory_bytes(), rel=0.05)


def test_an_export_is_registered_as_an_onnx_classifier(exported) -> None:
    _, out = exported
    info = predictors.inspect_artifact("text-classification", out)
    assert info.framework == "onnx" and info.labels == ["NEGATIVE", "POSITIVE"]
    assert predictors.predictor_class("text-classification", "onnx") is predictors.OnnxTextClassifier
    with pytest.raises(InputError, match="no predictor"):
        predictors.inspect_artifact("text-generation", out)  # ONNX serves classifiers only
    with pytest.raises(InputError, match="not int8 weights"):
        from transformers import AutoModelForSequenceClassification

        compression.load(out, AutoModelForSequenceClassification)


def test_an_export_changed_after_it_was_written_is_refused(exported, tmp_path) -> None:
    import onnx

    _, out = exported
    renamed = tmp_path / "renamed"
    shutil.copytree(out, renamed)
    manifest = json.loads((renamed / compression.MANIFEST).read_text())
    manifest["inputs"] = ["input_ids", "attention_mask"]
    (renamed / compression.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"not the inputs compression\.json names"):
        compression.check_files(renamed)
    manifest["inputs"] = ["input_ids", "position_ids"]
    (renamed / compression.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="inputs"):
        compression.check_files(renamed)

    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    graph = onnx.load(str(foreign / compression.ONNX_FILE))
    graph.graph.node[0].domain = "com.example.native"  # a custom operator would be native code
    onnx.save(graph, str(foreign / compression.ONNX_FILE))
    with pytest.raises(InputError, match="not a standard ONNX operator"):
        predictors.OnnxTextClassifier().load(foreign, "cpu")

    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / compression.ONNX_FILE).unlink()
    with pytest.raises(InputError, match=r"lacks model\.onnx"):
        compression.check_files(missing)


def test_an_export_uploaded_as_a_users_model_is_refused(exported, tmp_path) -> None:
    """What compression cost is measured by Steward, never taken from an upload."""
    from inference.exceptions import InvalidArchive
    from inference.services import uploads

    _, out = exported
    archive = tmp_path / "upload.zip"
    archive.write_bytes(artifacts.pack_directory(out))
    with pytest.raises(InvalidArchive, match="holds a compressed model"):
        uploads._checked(archive, "text-classification", tmp_path / "work", "0" * 64, archive.stat().st_size)


def test_an_architecture_without_segment_ids_exports_with_the_inputs_its_tokenizer_makes(exported, tmp_path) -> None:
    """A DistilBERT-shaped classifier (no token_type_ids; its forward takes the mask second): the graph
    reads exactly the inputs the tokenizer makes, by name."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    source, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, hidden_dim=64, n_layers=2, n_heads=2,
                              num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    model = DistilBertForSequenceClassification(config).eval()
    folder = tmp_path / "distil"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "onnx"
    document = compression.export_onnx(model, tokenizer, folder, out)
    assert document["inputs"] == ["input_ids", "attention_mask"]
    served = predictors.OnnxTextClassifier()
    served.load(out, "cpu")
    assert served.labels == ["a", "b", "c"]
    texts = sst2(6)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch.softmax(model(**batch).logits, dim=-1).numpy()
    assert np.allclose(served.predict_proba(texts), expected, atol=1e-5)
