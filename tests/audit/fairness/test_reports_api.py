"""Bias reports end to end: REST API, a real worker, stored results, downloads, the approval gate."""

from __future__ import annotations

import csv
import io
import json
import time

import numpy as np
import pytest
from django.test import Client
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from rest_framework.test import APIClient

from audit.fairness.models import BiasReport, FairnessPolicy
from audit.log.models import LogEntry
from inference.services.registry import model_version_transition
from inference.services.uploads import model_version_register
from tests.inference.factories import CARD, bearer_client, csv_upload, serve_model, stored_files
from tests.portal.accounts.factories import OrganizationFactory
from tests.waits import patience

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def client(served, role="owner") -> APIClient:
    return bearer_client(served, role)


def csv_file(rows: list[dict], name: str = "eval.csv") -> io.BytesIO:
    return csv_upload(rows, name)


def evaluation_rows(n: int = 240, *, biased: bool = True) -> list[dict]:
    """Rows for the tiny credit model (grant iff income > 50); group B earns less when `biased`."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        group = "A" if i % 2 else "B"
        income = float(rng.integers(0, 100)) - (25 if biased and group == "B" else 0)
        income = max(income, 0.0)
        noisy = biased and rng.random() < 0.1
        truth = "grant" if (income > 50) != noisy else "deny"
        rows.append({"income": income, "region": "north" if i % 3 else "south", "group": group, "outcome": truth})
    return rows


def wait_for(report_id: int, timeout: float = 120) -> BiasReport:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        report = BiasReport.objects.get(pk=report_id)
        if report.status in ("done", "failed"):
            return report
        time.sleep(0.1)
    raise AssertionError(f"report {report_id} is still {BiasReport.objects.get(pk=report_id).status}")


def test_tabular_report_matches_fairlearn_and_downloads(celery_worker, tabular) -> None:
    # given
    rows = evaluation_rows()
    api = client(tabular)
    # when
    created = api.post("/api/v1/models/credit/versions/1/bias-reports", {
        "file": csv_file(rows), "label_column": "outcome", "sensitive_columns": "group, region",
        "favourable_label": "grant",
    }, format="multipart")
    # then
    assert created.status_code == 202, created.content
    report = wait_for(created.json()["id"])
    assert report.status == "done", report.error
    detail = api.get(f"/api/v1/bias-reports/{report.pk}").json()
    assert detail["rows_done"] == detail["rows_total"] == len(rows)
    result = detail["result"]
    assert [a["axis"] for a in result["axes"]] == ["group", "region", "group x region"]
    y_true = np.array([r["outcome"] == "grant" for r in rows])
    y_pred = np.array([r["income"] > 50 for r in rows])  # what the tiny model predicts
    groups = [r["group"] for r in rows]
    disparities = result["axes"][0]["disparities"]
    assert disparities["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=groups), abs=1e-6)
    assert disparities["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=groups), abs=1e-6)
    assert detail["verdict"] == result["verdict"] == "fail"  # group B's selection rate is far lower
    assert result["dataset"]["sha256"] == report.dataset_sha256 and len(report.dataset_sha256) == 64
    # downloads
    as_json = api.get(f"/api/v1/bias-reports/{report.pk}/download?format=json")
    assert as_json.status_code == 200 and json.loads(as_json.content)["verdict"] == "fail"
    as_csv = api.get(f"/api/v1/bias-reports/{report.pk}/download?format=csv")
    table = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert as_csv["Content-Type"] == "text/csv"
    assert {r["group_or_metric"] for r in table if r["section"] == "group" and r["axis"] == "group"} == {"A", "B"}
    assert api.get(f"/api/v1/bias-reports/{report.pk}/download?format=pdf").status_code == 400
    # recorded, and listed for the version
    actions = set(LogEntry.objects.filter(organization_id=tabular.org.pk).values_list("action", flat=True))
    assert {"bias_report.requested", "bias_report.completed"} <= actions
    listed = api.get("/api/v1/models/credit/versions/1/bias-reports").json()
    assert [r["number"] for r in listed] == [1]
    # the page names each metric in the reader's language, beside the identifier the downloads use
    reader = Client(headers={"accept-language": "zh-hans"})
    reader.force_login(tabular.actors["auditor"].user)
    page = reader.get(f"/bias-reports/{report.pk}/").content.decode()
    for said in ("人口统计均等比率", "人口统计均等差值", "均等几率差值", '<code class="metric-id">demographic_parity_ratio'):
        assert said in page, said
    assert "Demographic parity" not in page
    from django.utils import translation

    from inference.evidence import version_evidence

    with translation.override("zh-hans"):
        bias = next(e for e in version_evidence(tabular.version) if e.title == "偏见报告")
    assert "：不通过：人口统计均等" in bias.summary and "（group" in bias.summary, bias.summary


def test_text_report_on_the_real_sentiment_model(celery_worker, db, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(slug="newsroom"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    templates = "template,label\nI am a proud {identity} person,0\n{identity} people are disgusting,1\n" \
                "My neighbour is {identity},0\nI hate {identity} people,1\n"
    upload = io.BytesIO(templates.encode())
    upload.name = "templates.csv"
    created = client(served).post("/api/v1/models/sentiment/versions/1/bias-reports", {
        "file": upload, "terms": json.dumps(["gay", "straight", "muslim", "christian"]), "score_label": "NEGATIVE",
    }, format="multipart")
    assert created.status_code == 202, created.content
    report = wait_for(created.json()["id"], timeout=180)
    assert report.status == "done", report.error
    result = report.result
    assert result["kind"] == "text" and result["rows"] == 16 and len(result["per_term"]) == 4
    for row in result["per_term"]:
        assert {"score_shift", "flip_rate", "subgroup_auc", "bpsn_auc", "bnsp_auc"} <= set(row)
        assert 0 <= row["mean_score"] <= 1
    shifts = [r["score_shift"] for r in result["per_term"]]
    assert sum(shifts) == pytest.approx(0, abs=1e-5)  # shifts are against the template average
    assert result["overall_auc"] is not None and result["verdict"] in ("pass", "warn", "fail")
    assert result["direction"] is None  # NEGATIVE is what label 1 ("disgusting", "hate") means
    # the opposite label: the report says so, and the reversed AUCs are not failures of the model
    upload = io.BytesIO(templates.encode())
    upload.name = "templates.csv"
    reversed_run = client(served).post("/api/v1/models/sentiment/versions/1/bias-reports", {
        "file": upload, "terms": json.dumps(["gay", "straight", "muslim", "christian"]), "score_label": "POSITIVE",
    }, format="multipart")
    assert reversed_run.status_code == 202, reversed_run.content
    flipped = wait_for(reversed_run.json()["id"], timeout=180).result
    assert flipped["overall_auc"] < 0.5 and flipped["direction"]["reversed"]
    assert "NEGATIVE" in flipped["direction"]["message"] and "POSITIVE was chosen" in flipped["direction"]["message"]
    assert all(c["verdict"] != "fail" for name, c in flipped["checks"].items() if name.endswith("_auc"))


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"label_column": "missing_col", "sensitive_columns": "group"}, 400, "lacks the column"),
    ({"label_column": "outcome", "sensitive_columns": "nope"}, 400, "nope"),
    ({"label_column": "outcome", "sensitive_columns": ""}, 400, "sensitive column"),
    ({"label_column": "region", "sensitive_columns": "group"}, 400, "not one of"),
    ({"label_column": "outcome", "sensitive_columns": "group", "favourable_label": "maybe"}, 400, "favourable"),
    ({"dataset": "demo-identity"}, 400, "Unknown dataset"),
])
def test_bad_input_is_refused_and_nothing_is_kept(tabular, body, status, needle) -> None:
    before = stored_files("bias")
    payload = {"file": csv_file(evaluation_rows(40)), **body}
    response = client(tabular).post("/api/v1/models/credit/versions/1/bias-reports", payload, format="multipart")
    assert response.status_code == status, response.content
    assert needle in response.json()["error"]["message"]
    assert BiasReport.objects.count() == 0 and stored_files("bias") == before
    assert not LogEntry.objects.filter(action="bias_report.requested").exists()


def test_non_binary_labels_empty_groups_and_large_files(tabular, settings) -> None:
    api = client(tabular)
    rows = evaluation_rows(40)
    rows[3]["outcome"] = "maybe"
    three = api.post("/api/v1/models/credit/versions/1/bias-reports",
                     {"file": csv_file(rows), "label_column": "outcome", "sensitive_columns": "group"},
                     format="multipart")
    assert three.status_code == 400 and "binary" in three.json()["error"]["message"]
    rows = evaluation_rows(40)
    rows[5]["group"] = ""
    empty = api.post("/api/v1/models/credit/versions/1/bias-reports",
                     {"file": csv_file(rows), "label_column": "outcome", "sensitive_columns": "group"},
                     format="multipart")
    assert empty.status_code == 400 and "empty in 1 row" in empty.json()["error"]["message"]
    settings.BIAS_MAX_BYTES = 1024
    large = api.post("/api/v1/models/credit/versions/1/bias-reports",
                     {"file": csv_file(evaluation_rows(200)), "label_column": "outcome", "sensitive_columns": "group"},
                     format="multipart")
    assert large.status_code == 413 and "larger than" in large.json()["error"]["message"]
    assert BiasReport.objects.count() == 0


def test_text_templates_are_checked(db, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(slug="words"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes)
    api = client(served)
    cases = [
        ("template,label\nno slot here,0\n", ["a", "b"], "slot"),
        ("template,label\nI am {identity},2\n", ["a", "b"], "binary"),
        ("text\nI am {identity}\n", ["a", "b"], "'template' column"),
        ("template\nI am {identity}\n", ["only"], "at least two"),
    ]
    for body, terms, needle in cases:
        upload = io.BytesIO(body.encode())
        upload.name = "t.csv"
        response = api.post("/api/v1/models/sentiment/versions/1/bias-reports",
                            {"file": upload, "terms": ",".join(terms)}, format="multipart")
        assert response.status_code == 400, (body, response.content)
        assert needle in response.json()["error"]["message"], (needle, response.json())
    assert BiasReport.objects.count() == 0


def test_approval_needs_a_passing_report_when_the_policy_says_so(celery_worker, tabular, tmp_path) -> None:
    # given: the policy requires a passing report, and a new version is submitted
    admin = client(tabular, "admin")
    policy = admin.put("/api/v1/fairness-policy", {"require_passing_report": True}, format="json")
    assert policy.status_code == 200 and policy.json()["require_passing_report"] is True
    from tests.inference.factories import tiny_tabular_archive

    version = model_version_register(actor=tabular.actors["owner"], name="credit", task="tabular-classification",
                                     archive=io.BytesIO(tiny_tabular_archive(tmp_path / "v2", bias=0.01)), card=CARD)
    model_version_transition(actor=tabular.actors["owner"], version=version, action="submit")
    reviewer = client(tabular, "reviewer")
    # when: no report yet
    blocked = reviewer.post(f"/api/v1/models/credit/versions/{version.version}/approve", {}, format="json")
    # then
    assert blocked.status_code == 409 and "requires a passing bias report" in blocked.json()["error"]["message"]
    # when: a failing report
    owner = client(tabular)
    failing = owner.post(f"/api/v1/models/credit/versions/{version.version}/bias-reports", {
        "file": csv_file(evaluation_rows()), "label_column": "outcome", "sensitive_columns": "group"},
        format="multipart")
    assert wait_for(failing.json()["id"]).verdict == "fail"
    still = reviewer.post(f"/api/v1/models/credit/versions/{version.version}/approve", {}, format="json")
    assert still.status_code == 409 and "is fail" in still.json()["error"]["message"]
    # when: a passing one (both groups alike)
    passing = owner.post(f"/api/v1/models/credit/versions/{version.version}/bias-reports", {
        "file": csv_file(evaluation_rows(2000, biased=False)), "label_column": "outcome", "sensitive_columns": "group"},
        format="multipart")
    report = wait_for(passing.json()["id"])
    assert report.verdict == "pass", report.result["axes"][0]["disparities"]
    approved = reviewer.post(f"/api/v1/models/credit/versions/{version.version}/approve", {}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"


def test_policy_api_checks_its_input(tabular) -> None:
    admin = client(tabular, "admin")
    default = admin.get("/api/v1/fairness-policy").json()
    assert default["effective_thresholds"]["demographic_parity_ratio"]["fail"] == 0.8
    bad = admin.put("/api/v1/fairness-policy", {"thresholds": {"demographic_parity_difference": {"warn": 0.5,
                                                                                                 "fail": 0.1}}},
                    format="json")
    assert bad.status_code == 400 and "warn level" in bad.json()["error"]["message"]
    assert admin.put("/api/v1/fairness-policy", {"min_group_size": 0}, format="json").status_code == 400
    ok = admin.put("/api/v1/fairness-policy", {"thresholds": {"equalized_odds_difference": {"fail": 0.3}},
                                               "bootstrap_resamples": 500}, format="json")
    assert ok.status_code == 200 and ok.json()["effective_thresholds"]["equalized_odds_difference"]["fail"] == 0.3
    assert FairnessPolicy.objects.get(organization=tabular.org).bootstrap_resamples == 500
    assert LogEntry.objects.filter(action="fairness_policy.updated").count() == 1
    assert client(tabular, "owner").put("/api/v1/fairness-policy", {"min_group_size": 5},
                                        format="json").status_code == 403


def test_demo_adult_report_on_the_demo_income_model(celery_worker, db) -> None:
    """The shipped Adult test set through the real demo income model: sex, race and sex x race."""
    from django.conf import settings

    from inference.ml import artifacts
    from inference.ml.demos import INCOME, build_cached

    folder, _ = build_cached(INCOME, lambda *a: None, settings.BUILD_CACHE_DIR)
    served = serve_model(OrganizationFactory(slug="census"), name="income", task="tabular-classification",
                         archive=artifacts.pack_directory(folder))
    created = client(served).post("/api/v1/models/income/versions/1/bias-reports", {"dataset": "demo-adult"},
                                  format="json")
    assert created.status_code == 202, created.content
    report = wait_for(created.json()["id"], timeout=180)
    assert report.status == "done", report.error
    assert report.rows_total == 16281
    axes = {a["axis"]: a for a in report.result["axes"]}
    assert set(axes) == {"sex", "race", "sex x race"}
    assert {g["group"] for g in axes["sex"]["groups"]} == {"Male", "Female"}
    assert len(axes["sex x race"]["groups"]) == 10 and all(g["count"] >= 30 or g["too_small"]
                                                           for g in axes["sex x race"]["groups"])
    # the model selects women far less often: the four-fifths rule fails on sex
    assert axes["sex"]["four_fifths_rule"]["passes"] is False
    assert axes["sex"]["four_fifths_rule"]["lowest_group"] == "Female"
