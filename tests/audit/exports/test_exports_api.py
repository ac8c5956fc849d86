"""Compliance exports through the REST API on a real worker: bundles of the demo models and of a
model with every kind of evidence, read as an auditor would (PDF text, JSON against its schema,
CSV), verified offline by the standalone verifier, and tampered with file by file."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.exports.models import ComplianceExport
from audit.log.exports import public_key_pem
from audit.log.models import LogEntry
from audit.log.services import checkpoint_create, log_verify
from tests.inference.factories import bearer_client, csv_upload, serve_model, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory
from tests.waits import patience

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[3]
SECTIONS = ["1. Summary and open issues", "2. Model card", "3. Lifecycle and approvals", "4. Evaluation metrics",
            "5. Bias report", "6. Explanations", "7. Privacy guarantee", "8. Serving statistics", "9. Audit log",
            "10. Regulatory mapping", "11. Verifying this bundle", "EU AI Act, Annex IV", "NIST AI RMF"]


def finished(api, url: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        body = api.get(url).json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish: {body}")


def export_of(api, model: str, version: int = 1, **period) -> tuple[dict, bytes]:
    created = api.post(f"/api/v1/models/{model}/versions/{version}/exports", period, format="json")
    assert created.status_code == 202, created.content
    body = finished(api, created.json()["url"])
    assert body["status"] == "done", body
    download = api.get(body["bundle"]["url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    return body, download.content


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def verify_offline(bundle: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """The standalone verifier in a fresh interpreter with no Django settings; it must not import Django."""
    code = ("import runpy, sys; sys.argv = ['verify', sys.argv[1], '--public-key', sys.argv[2]]\n"
            "try:\n    runpy.run_module('audit.log.verify', run_name='__main__')\n"
            "finally:\n    assert 'django' not in sys.modules, 'the verifier imported Django'\n")
    return subprocess.run([sys.executable, "-c", code, str(bundle), str(key)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def check_bundle(data: bytes, tmp_path: Path, *, model: str) -> dict:
    """Opens a bundle as an auditor would; returns its evidence document."""
    bundle = zipfile.ZipFile(io.BytesIO(data))
    names = set(bundle.namelist())
    assert {"report.pdf", "evidence.json", "manifest.json", "manifest.sig", "public_key.pem", "README.txt",
            "audit/excerpt.jsonl", "schema/compliance-export.schema.json", "tables/issues.csv",
            "tables/eu_ai_act_annex_iv.csv", "tables/nist_ai_rmf.csv", "tables/lifecycle.csv"} <= names
    document = json.loads(bundle.read("evidence.json"))
    published = bearer_client_schema()
    assert published == json.loads(bundle.read("schema/compliance-export.schema.json"))
    jsonschema.Draft202012Validator(published, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        document)
    text = pdf_text(bundle.read("report.pdf"))
    for section in SECTIONS:
        assert section in text, section
    assert f"Technical documentation: {model}" in text
    # the CSV tables say what the document says
    annex = list(csv.DictReader(io.StringIO(bundle.read("tables/eu_ai_act_annex_iv.csv").decode())))
    assert [r["item"] for r in annex] == [r["item"] for r in document["regulatory_mapping"]["eu_ai_act_annex_iv"]]
    assert [r["status"] for r in annex] == [r["status"] for r in document["regulatory_mapping"]["eu_ai_act_annex_iv"]]
    issues = list(csv.DictReader(io.StringIO(bundle.read("tables/issues.csv").decode())))
    assert [i["message"] for i in issues] == [i["message"] for i in document["issues"]]
    # and the bundle verifies offline against the pinned key
    path, key = tmp_path / f"{model}.zip", tmp_path / "steward-audit.pem"
    path.write_bytes(data)
    key.write_text(public_key_pem())
    result = verify_offline(path, key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: evidence bundle") and f"model {model}" in result.stdout
    return document


def bearer_client_schema() -> dict:
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/exports/schema")  # public, no token
    assert response.status_code == 200
    return response.json()


def test_an_export_of_each_demo_model_verifies_offline(celery_worker, sentiment_bytes, tmp_path) -> None:
    from django.conf import settings

    from inference.ml import artifacts
    from inference.ml.demos import INCOME, build_cached

    income_folder, _ = build_cached(INCOME, lambda *a: None, settings.BUILD_CACHE_DIR)
    org = OrganizationFactory(slug="demo-exports")
    sentiment = serve_model(org, name="sentiment", task="text-classification", archive=sentiment_bytes)
    income = serve_model(org, name="income", task="tabular-classification",
                         archive=artifacts.pack_directory(income_folder))
    consumer, auditor = bearer_client(sentiment, "consumer"), bearer_client(sentiment, "auditor")
    assert consumer.post("/api/v1/models/sentiment/predict", {"inputs": ["a gripping, beautiful film",
                                                                         "dull and far too long"]},
                         format="json").status_code == 200
    row = {"age": 39, "workclass": "Private", "education_num": 13, "marital_status": "Never-married",
           "occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White", "sex": "Male",
           "capital_gain": 2174, "capital_loss": 0, "hours_per_week": 40, "native_country": "United-States"}
    predicted = consumer.post("/api/v1/models/income/predict", {"inputs": [row]}, format="json")
    assert predicted.status_code == 200, predicted.content
    checkpoint_create()  # what the verification covers is verified; a tail would be reported as such
    log_verify()

    for served in (sentiment, income):
        name = served.version.model.name
        body, data = export_of(auditor, name)
        document = check_bundle(data, tmp_path, model=name)
        assert document["model"]["name"] == name and document["model"]["status"] == "approved"
        assert document["model_card"]["intended_use"] == "tests"
        assert [t["to"] for t in document["lifecycle"]] == ["draft", "submitted", "approved"]
        assert document["lifecycle"][2]["comment"] == "ok"
        assert document["lifecycle"][2]["actor"] == served.actors["reviewer"].user.username
        assert document["serving"]["requests"] == 1 and document["serving"]["failed"] == 0
        assert document["audit"]["verification"]["ok"] is True
        actions = {e["action"] for e in document["audit"]["excerpt"]}
        assert {"model.registered", "model.submitted", "model.approved", "prediction.completed",
                "compliance_export.requested"} <= actions
        # missing evidence is listed plainly, never passed over
        messages = " ".join(i["message"] for i in document["issues"])
        assert "No finished bias report" in messages and "No global explanation" in messages
        annex = {r["item"]: r for r in document["regulatory_mapping"]["eu_ai_act_annex_iv"]}
        assert annex["8"]["status"] == "missing" and "held outside Steward" in annex["8"]["missing"][0]
        assert annex["2(g)"]["status"] == "partial"
        # the API lists it under the version, with its receipt in the log
        listed = auditor.get(f"/api/v1/models/{name}/versions/1/exports").json()
        assert [e["id"] for e in listed] == [body["id"]]
        entry = LogEntry.objects.get(index=body["receipt"]["index"])
        assert entry.action == "compliance_export.generated" and entry.leaf_hash == body["receipt"]["leaf_hash"]
        pdf = auditor.get(body["bundle"]["url"] + "?file=report.pdf")
        assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"


def bias_rows(n: int = 160) -> list[dict]:
    rows = []
    for i in range(n):
        group = "A" if i % 2 else "B"
        income = (i * 37) % 100 - (20 if group == "B" else 0)
        rows.append({"income": max(income, 0), "region": "north" if i % 3 else "south", "group": group,
                     "outcome": "grant" if income > 45 else "deny"})
    return rows


def test_export_with_every_kind_of_evidence_and_tampering_named(celery_worker, tabular, tmp_path) -> None:
    # given a version with a bias report, a global explanation, served and explained predictions
    owner, consumer, auditor = (bearer_client(tabular, r) for r in ("owner", "consumer", "auditor"))
    report = owner.post("/api/v1/models/credit/versions/1/bias-reports", {
        "file": csv_upload(bias_rows(), "eval.csv"), "label_column": "outcome", "sensitive_columns": "group",
        "favourable_label": "grant"}, format="multipart")
    assert report.status_code == 202, report.content
    assert finished(owner, f"/api/v1/bias-reports/{report.json()['id']}")["status"] == "done"
    rows = [{"income": income, "region": region} for income in (5, 30, 60, 95) for region in ("north", "south")]
    explained = owner.post("/api/v1/models/credit/versions/1/global-explanations",
                           {"dataset": "upload", "file": csv_upload(rows, "sample.csv"), "sample_size": 8},
                           format="multipart")
    assert finished(owner, explained.json()["url"])["status"] == "done"
    predicted = consumer.post("/api/v1/models/credit/predict", {"inputs": [{"income": 80, "region": "north"}],
                                                                "explain": True}, format="json")
    assert predicted.status_code == 200, predicted.content
    consumer.post("/api/v1/models/credit/predict", {"inputs": [{"income": 20, "region": "south"}]}, format="json")
    batch = consumer.post("/api/v1/models/credit/jobs", {"file": csv_upload(rows[:3], "batch.csv")}, format="multipart")
    assert batch.status_code == 202, batch.content
    assert finished(consumer, f"/api/v1/jobs/{batch.json()['id']}")["status"] == "done"
    # when
    _, data = export_of(auditor, "credit", period_start=str(timezone.localdate() - timedelta(days=6)))
    # then
    document = check_bundle(data, tmp_path, model="credit")
    assert document["export"]["period"]["start"] == str(timezone.localdate() - timedelta(days=6))
    bias = document["bias_report"]
    assert bias["number"] == 1 and bias["verdict"] in ("pass", "warn", "fail")
    assert {g["group"] for g in bias["result"]["axes"][0]["groups"]} == {"A", "B"}
    assert [r["name"] for r in document["explanations"]["global"]["ranking"]] == ["income", "region"]
    assert document["explanations"]["local_total"] == 1
    assert document["explanations"]["local_max_residual"] < 1e-6
    assert document["serving"]["requests"] == 2 and document["serving"]["latency_ms"]["p50"] > 0
    # the batch job's rows are served rows too
    assert document["serving"]["batch"] == {"jobs": 1, "rows": 3, "failed": 0, "cancelled": 0, "unfinished": 0}
    assert document["serving"]["rows_all"] == document["serving"]["rows"] + 3
    messages = " ".join(i["message"] for i in document["issues"])
    assert "No finished bias report" not in messages and "No global explanation" not in messages
    annex = {r["item"]: r for r in document["regulatory_mapping"]["eu_ai_act_annex_iv"]}
    assert any("bias report #1" in e for e in annex["2(g)"]["evidence"])
    bundle = zipfile.ZipFile(io.BytesIO(data))
    text = pdf_text(bundle.read("report.pdf"))
    assert "four-fifths line" in text  # the bias chart is drawn (its labels are text in the PDF)
    assert "Global explanation #1" in text and "mean |SHAP|" in text
    assert {"tables/bias_report.csv", "tables/global_explanation.csv", "tables/local_explanations.csv"} <= set(
        bundle.namelist())
    excerpt = [json.loads(line) for line in bundle.read("audit/excerpt.jsonl").splitlines()]
    assert {"bias_report.completed", "global_explanation.completed", "explanation.completed"} <= {
        e["fields"]["action"] for e in excerpt}
    assert all(e["fields"]["org"] == tabular.org.pk for e in excerpt)

    # tampering with any file is caught, and the verifier names that file
    key = tmp_path / "steward-audit.pem"
    for name in bundle.namelist():
        original = bundle.read(name)
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        result = verify_offline(_rezip(tmp_path, bundle, {name: bytes(changed)}), key)
        assert result.returncode == 1, (name, result.stdout)
        named = "manifest.json" if name == "manifest.sig" else name
        assert f" in {name}" in result.stdout or f" in {named}" in result.stdout, (name, result.stdout)
    removed = verify_offline(_rezip(tmp_path, bundle, {"tables/issues.csv": None}), key)
    assert removed.returncode == 1 and "file_missing in tables/issues.csv" in removed.stdout
    added = verify_offline(_rezip(tmp_path, bundle, {"tables/extra.csv": b"a,b\n"}), key)
    assert added.returncode == 1 and "file_unexpected in tables/extra.csv" in added.stdout


def _rezip(tmp_path: Path, bundle: zipfile.ZipFile, changes: dict[str, bytes | None]) -> Path:
    out = tmp_path / "tampered.zip"
    with zipfile.ZipFile(out, "w") as target:
        for name in bundle.namelist():
            if name in changes:
                if changes[name] is not None:
                    target.writestr(name, changes[name])
            else:
                target.writestr(name, bundle.read(name))
        for name, data in changes.items():
            if name not in bundle.namelist() and data is not None:
                target.writestr(name, data)
    return out


def test_exports_refused_clearly_and_nothing_stored(celery_worker, tabular, tmp_path) -> None:
    auditor, owner, consumer = (bearer_client(tabular, r) for r in ("auditor", "owner", "consumer"))
    url = "/api/v1/models/credit/versions/1/exports"
    today = timezone.localdate()
    before = (ComplianceExport.objects.count(), LogEntry.objects.count())
    cases = [
        ({"period_start": str(today), "period_end": str(today - timedelta(days=1))}, "starts"),
        ({"period_end": str(today + timedelta(days=1))}, "future"),
        ({"period_start": str(today - timedelta(days=400)), "period_end": str(today)}, "at most 366"),
        ({"period_start": "last tuesday"}, "wrong format"),
        ({"format": "docx"}, "format"),
        ({"language": "fr"}, "this portal offers en-gb"),  # not offered (STEWARD_LANGUAGES)
    ]
    for body, said in cases:
        response = auditor.post(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert said in json.dumps(response.json()), (body, response.json())
    assert consumer.post(url, {}, format="json").status_code == 403
    assert owner.post(url, {}, format="json").status_code == 403  # owners read exports; auditors make them
    assert consumer.get(url).status_code == 403
    assert (ComplianceExport.objects.count(), LogEntry.objects.count()) == before
    # unknown version, another tenant, unfinished, unknown file
    assert auditor.post("/api/v1/models/credit/versions/9/exports", {}, format="json").status_code == 404
    created = auditor.post(url, {}, format="json").json()
    body = finished(auditor, created["url"])
    assert owner.get(created["url"]).status_code == 200
    other = serve_model(OrganizationFactory(slug="other-bank"), name="credit", task="tabular-classification",
                        archive=tiny_tabular_archive(tmp_path / "other"))
    stranger = bearer_client(other, "admin")
    assert stranger.get(created["url"]).status_code == 404
    assert stranger.get(created["url"] + "/download").status_code == 404
    assert created["url"] not in json.dumps(stranger.get("/api/v1/exports").json())
    missing = auditor.get(body["bundle"]["url"] + "?file=../../etc/passwd")
    assert missing.status_code == 400 and "no file" in missing.json()["error"]["message"]
    pending = ComplianceExport.objects.create(organization=tabular.org, model_version=tabular.version, number=99,
                                              period_start=today, period_end=today,
                                              created_by=tabular.actors["auditor"].user)
    assert auditor.get(f"/api/v1/exports/{pending.pk}/download").status_code == 409


def test_an_export_whose_worker_died_is_requeued_and_finishes(celery_worker, tabular) -> None:
    from audit.exports.services import EXPORTS
    from portal.jobs import job_requeue_stale

    # given: an export claimed by a worker that stopped beating three minutes ago
    today = timezone.localdate()
    stale = timezone.now() - timedelta(minutes=3)
    export = ComplianceExport.objects.create(
        organization=tabular.org, model_version=tabular.version, number=1, period_start=today, period_end=today,
        status="running", stage="typesetting the PDF", steps_done=2, started_at=stale, heartbeat_at=stale,
        created_by=tabular.actors["auditor"].user)
    # when
    assert job_requeue_stale(EXPORTS) == 1
    # then: a live worker assembles it from the start, once
    body = finished(bearer_client(tabular, "auditor"), f"/api/v1/exports/{export.pk}")
    assert body["status"] == "done" and body["steps_done"] == body["steps_total"]
    assert LogEntry.objects.filter(action="compliance_export.generated", target_id=str(export.pk)).count() == 1
    assert job_requeue_stale(EXPORTS) == 0


def test_an_export_asked_for_in_chinese_has_its_report_in_chinese_and_the_same_evidence(
        celery_worker, tabular, settings) -> None:
    settings.LANGUAGES = [("en-gb", "English"), ("zh-hans", "简体中文")]
    auditor = bearer_client(tabular, "auditor")
    url = "/api/v1/models/credit/versions/1/exports"
    # by the body's field, and by the request's Accept-Language
    chinese = auditor.post(url, {"language": "zh-hans"}, format="json")
    followed = auditor.post(url, {}, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    english = auditor.post(url, {}, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert [r.status_code for r in (chinese, followed, english)] == [202, 202, 202]
    assert [r.json()["language"] for r in (chinese, followed, english)] == ["zh-hans", "zh-hans", "en-gb"]
    bundles = {}
    for name, created in (("zh", chinese), ("en", english)):
        body = finished(auditor, created.json()["url"])
        assert body["status"] == "done", body
        bundles[name] = zipfile.ZipFile(io.BytesIO(auditor.get(body["bundle"]["url"]).content))
    text = pdf_text(bundles["zh"].read("report.pdf"))
    for heading in ("技术文档：credit", "1. 摘要与未解决问题", "2. 模型卡", "7. 隐私保证与训练数据账本", "9. 审计日志",
                    "10. 法规对照", "欧盟《人工智能法》附件 IV", "11. 校验本证据包", "第 1 页"):
        assert heading in text, heading
    assert "Summary and open issues" not in text and "?" not in text.split("1. 摘要与未解决问题", 1)[0]
    assert "1. Summary and open issues" in pdf_text(bundles["en"].read("report.pdf"))
    # the evidence is the same in both: JSON keys and statuses, CSV headers
    documents = {name: json.loads(bundle.read("evidence.json")) for name, bundle in bundles.items()}
    assert documents["zh"].keys() == documents["en"].keys()
    assert ([r["status"] for r in documents["zh"]["regulatory_mapping"]["eu_ai_act_annex_iv"]]
            == [r["status"] for r in documents["en"]["regulatory_mapping"]["eu_ai_act_annex_iv"]])
    assert (bundles["zh"].read("tables/issues.csv").decode().splitlines()[0]
            == bundles["en"].read("tables/issues.csv").decode().splitlines()[0] == "severity,area,message")
    assert [i["code"] for i in documents["zh"]["issues"]] == [i["code"] for i in documents["en"]["issues"]]
    assert "No finished bias report: how the model treats demographic groups is not measured." in [
        i["message"] for i in documents["zh"]["issues"]]  # English in the evidence, whatever the language
    # the open issues and the regulatory mapping, said in Chinese: in the report and on the export's page
    flat = "".join(text.split())
    assert "没有已完成的偏见报告" in flat and "预期用途、提供者、版本" in flat and "No finished bias report" not in text
    from django.test import Client

    reader = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reader.force_login(tabular.actors["auditor"].user)
    page = reader.get(f"/exports/{ComplianceExport.objects.order_by('pk').first().pk}/").content.decode()
    assert "没有已完成的偏见报告：模型如何对待各人口群体尚未测量。" in page and "预期用途、提供者、版本" in page
    assert "No finished bias report" not in page and "Intended purpose, provider" not in page
    assert "模型 credit 版本 1，任务" in page and "model credit version 1, task" not in page  # a phrase with values
    assert "模型卡：预期用途；模型卡：超出范围的用途" in page and "model card:" not in page  # its value said too
