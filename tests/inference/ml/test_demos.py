"""The demo models' ML side (inference/ml/demos.py) finds the build cache where the portal does."""

from __future__ import annotations

from django.conf import settings

from inference.ml.demos import DEMO_MODELS, default_cache_dir, recipe_key


def test_the_ml_side_reads_the_build_cache_the_portal_uses() -> None:
    assert default_cache_dir() == settings.BUILD_CACHE_DIR


def test_each_demo_model_has_its_own_recipe_key() -> None:
    keys = [recipe_key(model) for model in DEMO_MODELS]
    assert len(set(keys)) == len(keys) and all(key.startswith(m.name + "-") for key, m in zip(keys, DEMO_MODELS, strict=True))
