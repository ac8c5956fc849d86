"""Requests that once made a 500 get a 4xx that says what is wrong, and leave nothing behind."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.test import Client

from inference.models import BatchJob, Prediction
from tests.inference.factories import bearer_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["delete", "put", "patch", "options", "trace"])
def test_methods_a_view_does_not_serve_are_405(tabular, method) -> None:
    owner = bearer_client(tabular, "owner")
    response = owner.generic(method.upper(), "/api/v1/models")
    assert response.status_code == 405, response.content
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_deeply_nested_json_is_400(tabular) -> None:
    body = "[" * 5000 + "]" * 5000
    response = bearer_client(tabular, "consumer").post("/api/v1/models/credit/predict", body,
                                                       content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nests deeper" in response.json()["error"]["message"]


@pytest.mark.parametrize(("text", "message"), [("a\\u0000b", "NUL"), ("\\ud800", "surrogate")])
def test_text_that_cannot_be_stored_is_400_and_nothing_is_kept(tabular, text, message) -> None:
    body = '{"inputs": [{"income": 5, "region": "' + text + '"}]}'
    response = bearer_client(tabular, "consumer").post("/api/v1/models/credit/predict", body,
                                                       content_type="application/json")
    assert response.status_code == 400 and message in response.json()["error"]["message"], response.content
    assert not Prediction.objects.exists()


def test_a_csv_field_over_the_csv_modules_limit_is_400(tabular) -> None:
    data = io.BytesIO(b"income,region\n" + b"1," + b"x" * 200_000 + b"\n")
    data.name = "rows.csv"
    response = bearer_client(tabular, "consumer").post("/api/v1/models/credit/jobs", {"file": data},
                                                       format="multipart")
    assert response.status_code == 400, response.content
    assert "longer than 131,072 characters" in response.json()["error"]["message"]
    assert not BatchJob.objects.exists()


def _damaged(tmp_path) -> bytes:
    from tests.inference.factories import tiny_tabular_archive

    good = tiny_tabular_archive(tmp_path / "m")
    bundle = zipfile.ZipFile(io.BytesIO(good))
    info = bundle.getinfo("model.onnx")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(good)
    for offset in range(start + 4, start + 12):  # inside the member's compressed data
        damaged[offset] ^= 0xFF
    return bytes(damaged)


def _lying(tmp_path) -> bytes:
    """A member whose headers declare 16 bytes while its data is far longer."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("schema.json", "{}" + " " * 1_000_000)
    raw = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo("schema.json")
    raw[info.header_offset + 22:info.header_offset + 26] = (16).to_bytes(4, "little")  # local header
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24:central + 28] = (16).to_bytes(4, "little")  # central directory
    return bytes(raw)


@pytest.mark.parametrize("make", [_damaged, _lying])
def test_damaged_or_lying_archives_are_refused_in_a_sentence(tabular, tmp_path, make) -> None:
    from inference.exceptions import InvalidArchive
    from inference.models import ModelVersion
    from inference.services.uploads import model_version_register

    with pytest.raises(InvalidArchive) as refused:
        model_version_register(actor=tabular.actors["owner"], name="broken", task="tabular-classification",
                               archive=io.BytesIO(make(tmp_path)))
    assert "damaged" in refused.value.message or "more data than its header" in refused.value.message
    assert not ModelVersion.objects.filter(model__name="broken").exists()


def test_the_audit_logs_actor_filter_works_in_the_api_and_the_browser(tabular) -> None:
    auditor = tabular.actors["auditor"].user
    api = bearer_client(tabular, "auditor")
    response = api.get("/api/v1/audit/entries", {"actor": auditor.username[:4]})
    assert response.status_code == 200, response.content
    client = Client()
    client.force_login(auditor)
    assert client.get("/audit/", {"actor": "owner"}).status_code == 200
