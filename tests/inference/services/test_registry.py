"""Registration checks archives before keeping anything; the lifecycle enforces review."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage

from audit.log.models import LogEntry
from inference.exceptions import IllegalTransition, IncompleteCard, InvalidArchive, ModelNotServable, SelfReview
from inference.models import ModelVersion, RegisteredModel
from inference.services.registry import alias_move, model_version_transition
from inference.services.uploads import model_version_register
from portal.accounts.actor import actor_for_membership
from portal.platform.exceptions import Forbidden
from tests.inference.factories import CARD, tiny_tabular_archive, zip_of
from tests.portal.accounts.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    org = OrganizationFactory()
    return {
        role: actor_for_membership(member(role, org), org, role)
        for role in ["owner", "reviewer", "consumer", "admin"]
    }


def register(actor, tmp_path, **kwargs):
    return model_version_register(
        actor=actor, name=kwargs.pop("name", "credit"), task="tabular-classification",
        archive=io.BytesIO(kwargs.pop("archive", None) or tiny_tabular_archive(tmp_path / "m")),
        card=kwargs.pop("card", CARD), **kwargs,
    )


def stored_files() -> list[str]:
    try:
        return default_storage.listdir("models")[0]
    except FileNotFoundError:
        return []


class RegisterTests:
    def test_registers_a_checked_draft_with_its_schema(self, people, tmp_path) -> None:
        version = register(people["owner"], tmp_path)
        assert version.status == "draft" and version.version == 1
        assert version.labels == ["deny", "grant"] and version.input_schema["features"][0]["name"] == "income"
        assert default_storage.exists(version.artifact) and len(version.artifact_sha256) == 64
        assert LogEntry.objects.filter(action="model.registered", target_id=str(version.pk)).exists()
        assert register(people["owner"], tmp_path).version == 2

    @pytest.mark.parametrize(
        ("archive", "message"),
        [
            (b"not an archive", "neither a .zip nor a .tar.gz"),
            (zip_of({"../x.pt": b"1"}), "outside the archive"),
            (zip_of({"schema.json": b"{}"}), "model.onnx"),
            (zip_of({"model.onnx": b"garbage", "schema.json": b'{"features": [{"name": "a", "type": "number", "mean": 0, "std": 1}], "labels": ["n", "y"]}'}), "not an ONNX model"),
            (zip_of({"model.pt": b"garbage", "schema.json": b"{}"}), "TorchScript"),
            (zip_of({"model.onnx": b"x", "schema.json": b"{nope"}), "not valid JSON"),
        ],
    )
    def test_bad_archives_are_refused_and_nothing_kept(self, people, tmp_path, archive, message) -> None:
        before = stored_files()
        with pytest.raises(InvalidArchive, match=message):
            register(people["owner"], tmp_path, archive=archive)
        assert not ModelVersion.objects.exists() and not RegisteredModel.objects.exists()
        assert stored_files() == before
        assert not LogEntry.objects.filter(action="model.registered").exists()

    def test_model_that_fails_on_an_example_is_refused(self, people, tmp_path) -> None:
        from tests.inference.factories import onnx_linear
        from tests.inference.hostile_models import tabular_archive

        wrong = onnx_linear([[1.0] * 7, [0.0] * 7], [0.0, 0.0])  # expects 7 inputs, the schema encodes 3
        with pytest.raises(InvalidArchive, match="fails on an example"):
            register(people["owner"], tmp_path, archive=tabular_archive(tmp_path / "wrong", wrong))

    def test_text_model_without_tokenizer_is_refused(self, people, tmp_path) -> None:
        archive = zip_of({"config.json": b"{}", "model.safetensors": b"x"})
        with pytest.raises(InvalidArchive, match="tokenizer"):
            model_version_register(actor=people["owner"], name="t", task="text-classification",
                                   archive=io.BytesIO(archive))

    def test_oversized_archive(self, people, tmp_path, settings) -> None:
        settings.MODEL_MAX_ARCHIVE_BYTES = 100
        from inference.exceptions import ArchiveTooLarge

        with pytest.raises(ArchiveTooLarge):
            register(people["owner"], tmp_path)

    @pytest.mark.parametrize("role", ["consumer", "reviewer"])
    def test_only_owners_and_admins_register(self, people, tmp_path, role) -> None:
        with pytest.raises(Forbidden):
            register(people[role], tmp_path)


class LifecycleTests:
    def test_submit_approve_alias_retire(self, people, tmp_path) -> None:
        version = register(people["owner"], tmp_path)
        model_version_transition(actor=people["owner"], version=version, action="submit")
        model_version_transition(actor=people["reviewer"], version=version, action="approve", comment="fine")
        alias_move(actor=people["owner"], model=version.model, alias="production", version=version)
        with pytest.raises(IllegalTransition, match="move it first"):
            model_version_transition(actor=people["reviewer"], version=version, action="retire")
        version.refresh_from_db()
        history = list(version.transitions.values_list("to_status", "actor__username", "comment"))
        assert [h[0] for h in history] == ["draft", "submitted", "approved"]
        assert history[2][2] == "fine"
        actions = set(LogEntry.objects.values_list("action", flat=True))
        assert {"model.submitted", "model.approved", "alias.moved"} <= actions

    def test_the_submitter_cannot_review(self, people, tmp_path) -> None:
        version = register(people["admin"], tmp_path)
        model_version_transition(actor=people["admin"], version=version, action="submit")
        with pytest.raises(SelfReview):
            model_version_transition(actor=people["admin"], version=version, action="approve")

    def test_rejection_needs_a_comment_and_allows_resubmission(self, people, tmp_path) -> None:
        version = register(people["owner"], tmp_path)
        model_version_transition(actor=people["owner"], version=version, action="submit")
        with pytest.raises(IllegalTransition, match="comment"):
            model_version_transition(actor=people["reviewer"], version=version, action="reject")
        model_version_transition(actor=people["reviewer"], version=version, action="reject", comment="no eval data")
        model_version_transition(actor=people["owner"], version=version, action="submit")
        assert ModelVersion.objects.get(pk=version.pk).status == "submitted"

    def test_incomplete_card_cannot_be_submitted(self, people, tmp_path) -> None:
        version = register(people["owner"], tmp_path, card={"intended_use": "x"})
        with pytest.raises(IncompleteCard) as caught:
            model_version_transition(actor=people["owner"], version=version, action="submit")
        assert "limitations" in caught.value.details["missing"]

    def test_illegal_moves(self, people, tmp_path) -> None:
        version = register(people["owner"], tmp_path)
        with pytest.raises(IllegalTransition):
            model_version_transition(actor=people["reviewer"], version=version, action="approve")
        with pytest.raises(ModelNotServable):
            alias_move(actor=people["owner"], model=version.model, alias="production", version=version)
        with pytest.raises(Forbidden):
            model_version_transition(actor=people["consumer"], version=version, action="submit")
