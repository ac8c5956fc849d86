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


def test_processes_that_want_one_recipe_at_once_build_it_once(tmp_path) -> None:
    """CI's early build and a test worker can ask for the same demo model together: the second waits on
    the build cache's lock and reads what the first built, rather than training it again beside it."""
    import dataclasses
    import threading

    from inference.ml import demos

    built: list[str] = []
    entered, release = threading.Event(), threading.Event()

    @dataclasses.dataclass(frozen=True)
    class Slow(demos.DemoModel):
        def build(self, out, progress):  # type: ignore[override]
            built.append(threading.current_thread().name)
            entered.set()
            assert release.wait(60)
            out.mkdir(parents=True)
            (out / "weights.bin").write_bytes(b"built once")
            return {"accuracy": 0.5}

    model = Slow(name="slow", task="text-classification", recipe={"n": 1}, description="", card={}, metrics_text="")
    results: dict[str, tuple] = {}

    def want(name: str) -> None:
        results[name] = demos.build_cached(model, lambda *a: None, tmp_path)

    first = threading.Thread(target=want, args=("first",), name="first")
    first.start()
    assert entered.wait(60)
    second = threading.Thread(target=want, args=("second",), name="second")
    second.start()
    release.set()
    first.join(60)
    second.join(60)
    assert built == ["first"]
    assert results["first"] == results["second"]
    assert (results["second"][0] / "weights.bin").read_bytes() == b"built once"
    assert results["second"][1] == {"accuracy": 0.5}
