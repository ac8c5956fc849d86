"""Explanations on the real sentiment model and a tabular model: additivity, exactness, determinism."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from inference.ml.explain import Explained, TabularExplainer, TextExplainer, global_ranking, summary
from inference.ml.predictors import TabularClassifier, TextClassifier

SHORT = ["a dull , boring film", "the acting is wonderful", "not bad at all", "I hated every minute of it",
         "a gorgeous, moving and funny film", "it is neither good nor terrible"]


@pytest.fixture(scope="module")
def text_explainer(tmp_path_factory, sentiment_bytes) -> TextExplainer:
    from inference.ml import artifacts

    folder = tmp_path_factory.mktemp("sentiment")
    archive = folder / "model.zip"
    archive.write_bytes(sentiment_bytes)
    artifacts.extract(archive, folder / "model", max_unpacked_bytes=2**31)
    predictor = TextClassifier()
    predictor.load(folder / "model", "cpu")
    return TextExplainer(predictor)


def brute_force_shapley(explainer: TextExplainer, text: str, label: int) -> np.ndarray:
    """Shapley values over the same masker, by the definition: every coalition, every weight."""
    masker = explainer.masker
    n = len(masker.tokenizer(text)["input_ids"])
    players = list(range(masker.keep_prefix, n - masker.keep_suffix))
    k = len(players)
    value = {}
    for subset in itertools.product([False, True], repeat=k):
        mask = np.ones(n, dtype=bool)
        mask[players] = subset
        ids = np.asarray(masker(mask, text)[0]).reshape(1, -1)
        value[subset] = explainer.predictor.proba_from_ids(ids)[0, label]
    phi = np.zeros(k)
    for j in range(k):
        for subset, v in value.items():
            if subset[j]:
                continue
            s = sum(subset)
            with_j = (*subset[:j], True, *subset[j + 1:])
            phi[j] += math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) * (value[with_j] - v)
    return phi


@pytest.mark.parametrize("text", SHORT)
def test_short_texts_get_exact_shapley_values(text_explainer, text) -> None:
    explained = text_explainer.explain(text, max_evals=500)
    label = explained.labels.index(explained.label)
    values = np.asarray(explained.values)[1:-1, label]  # without [CLS] and [SEP]
    assert explained.method == "exact"
    assert len(values) <= 8
    np.testing.assert_allclose(values, brute_force_shapley(text_explainer, text, label), atol=1e-6)
    assert explained.residual < 1e-6


def test_partition_agrees_with_brute_force_on_short_texts(text_explainer) -> None:
    """Owen values (Partition) are not Shapley values, but on short texts they rank tokens alike."""
    correlations = []
    for text in SHORT:
        explained = text_explainer.explain(text, max_evals=500, method="partition")
        label = explained.labels.index(explained.label)
        assert explained.method == "partition" and explained.residual < 1e-6
        exact = brute_force_shapley(text_explainer, text, label)
        correlations.append(spearmanr(np.asarray(explained.values)[1:-1, label], exact).statistic)
    assert np.mean(correlations) >= 0.9, correlations
    assert min(correlations) >= 0.8, correlations


def test_long_text_partition_residual_words_and_determinism(text_explainer) -> None:
    text = "the acting is wonderful but the plot is dull and far too long for anyone who loves cinema"
    first = text_explainer.explain(text, max_evals=300)
    again = text_explainer.explain(text, max_evals=300)
    assert first.method == "partition" and first.evaluations <= 300 + 2
    assert first.residual < 1e-6
    assert first.values == again.values  # same input and budget, same attributions
    assert [w["word"] for w in first.words] == text.split()
    label = first.labels.index(first.label)
    inner = first.values[1:-1]  # [CLS] and [SEP] belong to no word
    assert sum(w["value"] for w in first.words) == pytest.approx(sum(v[label] for v in inner), abs=1e-9)
    said = summary(first)
    assert said.startswith(f"pushed towards {first.label}") and "'dull'" in said


def test_each_distinct_row_is_evaluated_once_and_the_attributions_stay(text_explainer) -> None:
    text = "the acting is wonderful but the plot is dull and far too long for anyone who loves cinema"
    counted = text_explainer.model
    inner, seen = counted.fn, []
    counted.fn = lambda ids: (seen.extend(row.tobytes() for row in np.asarray(ids)), inner(ids))[1]
    try:
        memoised = text_explainer.explain(text, max_evals=500)
        rows = list(seen)
        counted.memo = None
        plain = text_explainer.explain(text, max_evals=500)
    finally:
        counted.fn, counted.memo = inner, {}
    assert len(rows) == len(set(rows)) == memoised.evaluations
    assert plain.evaluations > memoised.evaluations  # Partition asks for some coalitions again
    np.testing.assert_allclose(memoised.values, plain.values, atol=1e-6)
    assert memoised.residual < 1e-6


def test_tabular_exact_values_match_interventional_shapley_by_hand(tmp_path) -> None:
    from inference.ml import artifacts
    from tests.inference.factories import tiny_tabular_archive

    archive = tmp_path / "tiny.zip"
    archive.write_bytes(tiny_tabular_archive(tmp_path / "tiny", bias=0.3))
    artifacts.extract(archive, tmp_path / "model", max_unpacked_bytes=2**30)
    predictor = TabularClassifier()
    predictor.load(tmp_path / "model", "cpu")
    explainer = TabularExplainer(predictor, predictor.background)
    row = {"income": 80.0, "region": "south"}
    explained = explainer.explain(row)
    assert explained.method == "exact" and explained.residual < 1e-6
    # by hand: v(S) = mean over background rows b of f(x_S, b_rest)
    def v(subset: tuple[bool, bool]) -> float:
        rows = [{"income": row["income"] if subset[0] else b["income"],
                 "region": row["region"] if subset[1] else b["region"]} for b in predictor.background]
        return float(predictor.predict_proba(rows)[:, 1].mean())
    phi_income = 0.5 * (v((True, False)) - v((False, False))) + 0.5 * (v((True, True)) - v((False, True)))
    phi_region = 0.5 * (v((False, True)) - v((False, False))) + 0.5 * (v((True, True)) - v((True, False)))
    values = np.asarray(explained.values)
    assert values[0, 1] == pytest.approx(phi_income, abs=1e-6)
    assert values[1, 1] == pytest.approx(phi_region, abs=1e-6)  # the tiny model ignores region
    assert explained.feature_values == [80.0, "south"]
    assert "income = 80.0" in summary(explained)


def _explained(label: str, features: list[str], values: list[list[float]], words: list | None = None):
    return Explained(method="exact", max_evals=64, evaluations=4, labels=["deny", "grant"], label=label,
                     features=features, values=values, base_values=[0.5, 0.5], output=[0.5, 0.5], residual=1e-9,
                     seconds=0.0, words=words or [])


def test_global_ranking_is_the_mean_absolute_value_towards_each_predicted_label() -> None:
    # given: two rows, one predicted grant, one deny (values: features x labels)
    rows = [
        _explained("grant", ["income", "region"], [[-0.3, 0.3], [0.05, -0.05]]),
        _explained("deny", ["income", "region"], [[0.2, -0.2], [-0.1, 0.1]]),
    ]
    # when
    result = global_ranking(rows)
    # then: |0.3| and |0.2| average to 0.25; the signed mean is towards each row's own label
    assert [r["name"] for r in result["ranking"]] == ["income", "region"]
    income, region = result["ranking"]
    assert income["mean_abs"] == pytest.approx(0.25) and income["mean_signed"] == pytest.approx(0.25)
    assert region["mean_abs"] == pytest.approx(0.075) and region["mean_signed"] == pytest.approx(-0.075)
    assert result["predicted"] == {"grant": 1, "deny": 1} and result["rows"] == 2 and result["kind"] == "feature"


def test_global_ranking_merges_words_and_counts_absent_words_as_zero() -> None:
    rows = [
        _explained("deny", [], [], words=[{"word": "Dull,", "value": 0.4}, {"word": "dull", "value": 0.2}]),
        _explained("deny", [], [], words=[{"word": "film", "value": -0.1}, {"word": "...", "value": 0.3}]),
    ]
    result = global_ranking(rows)
    ranked = {r["name"]: r for r in result["ranking"]}
    assert set(ranked) == {"dull", "film"}  # punctuation-only tokens are not words
    assert ranked["dull"]["mean_abs"] == pytest.approx(0.3) and ranked["dull"]["occurrences"] == 1
    assert ranked["film"]["mean_abs"] == pytest.approx(0.05) and result["kind"] == "word"
    with pytest.raises(ValueError):
        global_ranking([])


def _wide_explainer(tmp_path) -> TabularExplainer:
    from inference.ml import artifacts
    from tests.inference.factories import wide_tabular_archive

    archive = tmp_path / "wide.zip"
    archive.write_bytes(wide_tabular_archive(tmp_path / "wide"))
    artifacts.extract(archive, tmp_path / "model", max_unpacked_bytes=2**30)
    predictor = TabularClassifier()
    predictor.load(tmp_path / "model", "cpu")
    return TabularExplainer(predictor, predictor.background)


def test_a_sampled_explanation_is_reproducible_by_its_seed_and_counts_what_it_ran(tmp_path) -> None:
    from tests.inference.factories import wide_row

    explainer = _wide_explainer(tmp_path)
    with pytest.raises(ValueError, match="at least 43"):  # Permutation walks 2 x 21 + 1 coalitions at the least
        explainer.explain(wide_row(), max_evals=42)
    first = explainer.explain(wide_row(), max_evals=200, seed=11)
    other = explainer.explain(wide_row(), max_evals=200, seed=12)  # the generator moves on in between
    again = explainer.explain(wide_row(), max_evals=200, seed=11)
    assert first.method == "permutation" and first.seed == 11
    assert again.values == first.values  # the same seed, the same values, whatever ran in between
    assert other.values != first.values  # features interact: the coalitions drawn matter
    assert first.residual < 1e-6  # Permutation's values are efficient whatever it drew
    # the budget counts coalitions; each ran against every background row, after f(x) itself
    assert first.evaluations <= 200 and first.model_rows == 1 + first.evaluations * len(explainer.background)
