"""The demo models' ML side (inference/ml/demos.py) finds the build cache where the portal does."""

from __future__ import annotations

from django.conf import settings

from inference.ml.demos import DEMO_MODELS, default_cache_dir, recipe_key


def test_the_ml_side_reads_the_build_cache_the_portal_uses() -> None:
    assert default_cache_dir() == settings.BUILD_CACHE_DIR


def test_each_demo_model_has_its_own_recipe_key() -> None:
    keys = [recipe_key(model) for model in DEMO_MODELS]
    assert len(set(keys)) == len(keys) and all(key.startswith(m.name + "-") for key, m in zip(keys, DEMO_MODELS, strict=True))


def test_building_the_demo_models_twice_registers_once_and_each_bar_completes(db, capsys) -> None:
    from django.core.management import call_command

    from inference.models import ModelAlias

    call_command("setup_demo", "--quiet")
    call_command("build_demo_models", "--only", "income")
    first = capsys.readouterr()
    assert "income: registered as version 1, approved, aliased production" in first.out
    assert "adult_test_accuracy" in first.out
    from inference.models import ModelVersion

    card = ModelVersion.objects.get(model__name="income").card  # for people, not a JSON dump
    assert card["metrics"].startswith("Accuracy ") and "% on the 16,281 rows of the UCI Adult test set" in card["metrics"]
    call_command("build_demo_models", "--only", "income")  # make run, a second time
    second = capsys.readouterr()
    assert "income: already served" in second.out
    assert "100%" in second.err and "1/1" in second.err and "already served" in second.err, second.err
    assert ModelAlias.objects.filter(model__name="income", name="production").count() == 1
