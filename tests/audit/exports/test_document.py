"""The evidence document of a privately fine-tuned version: guarantee, training data and its ledger,
in the JSON (valid against the schema), the CSV and the PDF. The fine-tuning run itself is tested in
tests/inference/apis/test_finetuning.py; here its recorded outcome is laid down directly, as that
run leaves it, so that the export's reading of it is checked without minutes of DP-SGD."""

from __future__ import annotations

import io
from datetime import timedelta

import jsonschema
import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.exports import document, mapping, pdf, tables
from inference.ml import dp_accounting
from inference.models import FineTuneJob, ModelVersion, PrivacyLedgerEntry, Task, TrainingDataset
from tests.inference.factories import CARD

pytestmark = pytest.mark.django_db


def private_version(tabular) -> ModelVersion:
    base = tabular.version
    dataset = TrainingDataset.objects.create(
        organization=tabular.org, model=base.model, name="claims.csv", path="training/claims.json",
        sha256="ab" * 32, train_rows=900, holdout_rows=100, epsilon_cap=10.0, delta_cap=1e-5,
        created_by=tabular.actors["owner"].user)
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-5, rows=900, epochs=2, batch_size=30,
                            learning_rate=5e-4, max_grad_norm=1.0)
    version = ModelVersion.objects.create(
        model=base.model, version=2, task=base.task, framework=base.framework, labels=base.labels,
        input_schema=base.input_schema, artifact=base.artifact, artifact_sha256=base.artifact_sha256,
        artifact_size=base.artifact_size, card={**CARD, "metrics": "held-out accuracy 0.91"},
        metrics={"holdout_accuracy": 0.91, "base_holdout_accuracy": 0.9}, created_by=tabular.actors["owner"].user,
        privacy={"epsilon": 3.98, "delta": 1e-5, "accountant": "RDP (Opacus RDPAccountant)",
                 "mechanism": "DP-SGD, Poisson sampling, flat clipping (ghost clipping)",
                 "noise_multiplier": plan.noise_multiplier, "sample_rate": plan.sample_rate, "steps": plan.steps,
                 "max_grad_norm": 1.0, "dataset": "claims.csv", "dataset_sha256": "ab" * 32, "secure_mode": False,
                 "unit": "one record (example-level privacy)"})
    job = FineTuneJob.objects.create(
        organization=tabular.org, dataset=dataset, base_version=base, result_version=version, plan=plan.as_dict(),
        status="done", steps_done=plan.steps, epsilon_spent=3.98, created_by=tabular.actors["owner"].user)
    PrivacyLedgerEntry.objects.create(
        dataset=dataset, job=job, state="settled", noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate, steps_reserved=plan.steps, steps_spent=plan.steps, epsilon_planned=4.0,
        settled_at=timezone.now())
    return version


def test_a_private_version_documents_its_guarantee_and_ledger(tabular) -> None:
    # given
    version = private_version(tabular)
    today = timezone.localdate()
    # when
    built = document.build(version=version, number=1, period=(today - timedelta(days=6), today),
                           generated_by="auditor", excerpt=[])
    # then: the JSON
    jsonschema.Draft202012Validator(document.schema(),
                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(built)
    privacy = built["privacy"]
    assert privacy["guarantee"]["epsilon"] == 3.98 and privacy["job"]["status"] == "done"
    assert privacy["dataset"]["sha256"] == "ab" * 32 and len(privacy["dataset"]["ledger"]) == 1
    assert 3.5 < privacy["dataset"]["budget"]["epsilon_spent"] <= 4.0 + 1e-6
    assert any("secure_mode" in i["message"] for i in built["issues"])
    nist = {r["item"]: r for r in built["regulatory_mapping"]["nist_ai_rmf"]}
    assert nist["MEASURE 2.10"]["status"] == "present" and "epsilon 3.98" in nist["MEASURE 2.10"]["evidence"][0]
    annex = {r["item"]: r for r in built["regulatory_mapping"]["eu_ai_act_annex_iv"]}
    assert any("claims.csv" in e for e in annex["2(d)"]["evidence"])
    assert mapping.coverage(built["regulatory_mapping"])["eu_ai_act_annex_iv"]["missing"] >= 2
    # the CSV ledger and the PDF section
    ledger = tables.tables(built)["tables/privacy_ledger.csv"].decode().splitlines()
    assert ledger[0].startswith("job,state,noise_multiplier") and ledger[1].split(",")[1] == "settled"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.render(built))).pages)
    assert "(3.98, 1e-05)-differential privacy" in text and "Training data and its privacy ledger" in text
    assert "claims.csv" in text


def test_the_report_in_chinese_reads_back_in_chinese(tabular) -> None:
    from django.utils import translation

    version = private_version(tabular)
    today = timezone.localdate()
    with translation.override("zh-hans"):  # the evidence is English whoever builds it
        built = document.build(version=version, number=1, period=(today - timedelta(days=6), today),
                               generated_by="auditor", excerpt=[])
    noise = next(i for i in built["issues"] if i["code"] == "insecure_noise")
    assert noise["message"].startswith("The DP noise was drawn without secure_mode") and noise["area"] == "privacy"
    annex = {r["item"]: r for r in built["regulatory_mapping"]["eu_ai_act_annex_iv"]}
    assert annex["1(a)"]["title"] == "Intended purpose, provider, version"
    with translation.override("zh-hans"):
        rendered = pdf.render(built)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(rendered)).pages)
    flat = "".join(text.split())  # table cells wrap their lines
    # the open issues and the regulatory mapping, said in Chinese from the English evidence
    assert "差分隐私噪声未使用secure_mode生成" in flat and "预期用途、提供者、版本" in flat
    assert "差分隐私：epsilon3.98" in flat and "The DP noise" not in text and "Intended purpose" not in text
    assert "技术文档：credit 版本 2" in text and "7. 隐私保证与训练数据账本" in text
    assert "(3.98, 1e-05)-差分隐私" in text and "训练数据及其隐私账本" in text
    assert "claims.csv" in text and "Training data and its privacy ledger" not in text
    # the tables' names: the parts of each identifier in Chinese, the identifier (the JSON's key) beside them
    assert "留出数据准确率（holdout_accuracy）" in flat and "噪声乘数（noise_multiplier）" in flat
    assert "裁剪范数（max_grad_norm）" in flat and "noise multiplier" not in text and "holdout accuracy" not in text
    assert b"/STSong-Light" in rendered and translation.get_language() != "zh-hans"  # nothing left switched


def test_text_that_the_fonts_cannot_draw_is_replaced_not_dropped() -> None:
    assert pdf.clean("naïve <b>&</b> 漢字 ก") == 'naïve &lt;b&gt;&amp;&lt;/b&gt; <font name="STSong-Light">漢字</font> ?'


def test_chinese_text_of_the_evidence_is_set_in_a_cid_font_and_reads_back(tabular) -> None:
    """A Chinese organisation's card, names and people come out as written, not as question marks."""
    version = tabular.version
    card = {**CARD, "intended_use": "用于信用评分，每个决定都由人工复核。", "limitations": "仅在2023年的申请数据上训练。"}
    ModelVersion.objects.filter(pk=version.pk).update(card=card)
    version.refresh_from_db()
    today = timezone.localdate()
    built = document.build(version=version, number=1, period=(today - timedelta(days=6), today),
                           generated_by="审计员王", excerpt=[])
    rendered = pdf.render(built)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(rendered)).pages)
    assert "用于信用评分，每个决定都由人工复核。" in text and "仅在2023年的申请数据上训练。" in text
    assert "审计员王" in text and "?" not in text.split("Model card", 1)[1].split("Lifecycle", 1)[0]
    assert b"/STSong-Light" in rendered  # referenced by name: PDF readers supply the font


def test_the_schema_knows_every_task_a_version_can_have() -> None:
    # a task the registry serves but the schema refuses makes every export of such a model fail on the worker
    task = document.schema()["properties"]["model"]["properties"]["task"]["enum"]
    assert sorted(task) == sorted(Task.values)


def test_a_generative_version_exports_a_valid_document(tabular) -> None:
    # given: a text-generation version (its rows only: the document is built from the database)
    base = tabular.version
    version = ModelVersion.objects.create(
        model=base.model, version=2, task=Task.GENERATION, framework="transformers", labels=[], input_schema={},
        artifact=base.artifact, artifact_sha256=base.artifact_sha256, artifact_size=base.artifact_size,
        card=CARD, created_by=tabular.actors["owner"].user)
    today = timezone.localdate()
    # when
    built = document.build(version=version, number=1, period=(today - timedelta(days=6), today),
                           generated_by="auditor", excerpt=[])
    # then: it follows the schema, and the tables and the PDF render
    jsonschema.Draft202012Validator(document.schema(),
                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(built)
    assert built["model"]["task"] == "text-generation"
    assert tables.tables(built)["tables/issues.csv"].decode().startswith("severity,area,message")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.render(built))).pages)
    assert "text-generation" in text
