"""Private LoRA fine-tuning of the demo assistant through the REST API, on the real generation worker and
real weights: the records under a budget, the run, the merged draft whose card states the guarantee and
its held-out perplexity beside the base's, served through the OpenAI client once approved."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings

from audit.log.models import LogEntry
from inference.models import FineTuneJob, ModelVersion, TrainingDataset
from tests.inference.factories import bearer_client
from tests.portal.accounts.factories import token_for
from tests.waits import finished, patience

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def messages(count: int) -> list[str]:
    lines = (settings.BASE_DIR / "data" / "sms" / "ham.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line][:count]


def text_file(lines: list[str], name: str = "messages.txt") -> io.BytesIO:
    file = io.BytesIO(("\n".join(lines) + "\n").encode())
    file.name = name
    return file


def test_private_lora_of_the_assistant_end_to_end(live_server, assistant) -> None:
    from openai import OpenAI

    owner, reviewer = bearer_client(assistant, "owner"), bearer_client(assistant, "reviewer")
    created = owner.post("/api/v1/training-datasets", {"model": "assistant", "file": text_file(messages(50)),
                                                       "epsilon_cap": 8, "delta_cap": 1e-3}, format="multipart")
    assert created.status_code == 201, created.content
    dataset = created.json()
    assert dataset["train_rows"] == 45 and dataset["holdout_rows"] == 5
    run = owner.post("/api/v1/fine-tunes", {"dataset": dataset["id"], "model": "assistant", "base_version": 1,
                                            "target_epsilon": 4, "epochs": 1, "batch_size": 16,
                                            "learning_rate": 2e-3, "lora_rank": 4, "lora_targets": ["q_proj", "v_proj"]},
                     format="json")
    assert run.status_code == 202, run.content
    job = run.json()
    assert job["adapter"] == {"method": "lora", "rank": 4, "alpha": 16.0, "targets": ["q_proj", "v_proj"]}
    assert job["steps_total"] == 3
    job = finished(owner, f"/api/v1/fine-tunes/{job['id']}", timeout=600)
    assert job["status"] == "done", job
    assert job["steps_done"] == 3 and 0 < job["epsilon_spent"] <= 4
    stored = ModelVersion.objects.get(model__organization=assistant.org, version=job["result_version"])
    guarantee = stored.privacy
    assert stored.task == "text-generation" and stored.framework == "transformers" and stored.status == "draft"
    assert "LoRA rank 4" in guarantee["adapter"] and "book-keeping clipping" in guarantee["mechanism"]
    assert guarantee["holdout_perplexity"] > 1 and guarantee["base_holdout_perplexity"] > 1
    assert job["result"]["perplexity"] == pytest.approx(guarantee["holdout_perplexity"], abs=1e-3)
    assert "Perplexity on 5 held-out records" in stored.card["metrics"]
    assert "LoRA adapters trained" in stored.card["training_data"]
    ledger = owner.get(f"/api/v1/training-datasets/{dataset['id']}").json()
    assert ledger["ledger"][0]["state"] == "settled" and ledger["ledger"][0]["steps_spent"] == 3
    assert {"finetune.requested", "finetune.completed"} <= set(LogEntry.objects.values_list("action", flat=True))
    # approved, the merged version serves chat through the OpenAI surface like any version
    assert owner.post(f"/api/v1/models/assistant/versions/{stored.version}/submit", {}, format="json").status_code == 200
    approved = reviewer.post(f"/api/v1/models/assistant/versions/{stored.version}/approve", {"comment": "ok"},
                             format="json")
    assert approved.status_code == 200, approved.content
    secret = token_for(assistant.actors["consumer"].user, assistant.org, "consumer").secret
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=patience(300))
    answer = client.chat.completions.create(model=f"assistant@{stored.version}", max_tokens=6,
                                            messages=[{"role": "user", "content": "Say hello."}])
    assert answer.choices[0].message.content


@pytest.mark.parametrize(("body", "needle"), [
    ({"lora_rank": 0}, "lora_rank"),
    ({"lora_targets": ["nope_proj"]}, "no Linear layer called nope_proj"),
    ({"lora_targets": ["../x"]}, "lora_targets"),
])
def test_bad_adapters_are_refused_before_anything_is_reserved(assistant, body, needle) -> None:
    owner = bearer_client(assistant, "owner")
    dataset = owner.post("/api/v1/training-datasets", {"model": "assistant", "file": text_file(messages(30)),
                                                       "epsilon_cap": 8, "delta_cap": 1e-3}, format="multipart")
    assert dataset.status_code == 201, dataset.content
    refused = owner.post("/api/v1/fine-tunes", {"dataset": dataset.json()["id"], "model": "assistant",
                                                "base_version": 1, "target_epsilon": 2, "batch_size": 8, **body},
                         format="json")
    assert refused.status_code == 400, refused.content
    assert needle in json.dumps(refused.json())
    assert not FineTuneJob.objects.exists()


def test_generative_training_files_are_read_in_their_formats(assistant) -> None:
    owner = bearer_client(assistant, "owner")
    chats = "\n".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                               {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(25))
    made = owner.post("/api/v1/training-datasets", {"model": "assistant", "file": text_file([chats], "chats.jsonl"),
                                                    "epsilon_cap": 8, "delta_cap": 1e-3}, format="multipart")
    assert made.status_code == 201, made.content
    assert made.json()["train_rows"] + made.json()["holdout_rows"] == 25
    broken = owner.post("/api/v1/training-datasets", {"model": "assistant",
                                                      "file": text_file(['{"messages": "hi"}'] * 25, "bad.jsonl"),
                                                      "epsilon_cap": 8, "delta_cap": 1e-3}, format="multipart")
    assert broken.status_code == 400 and "messages" in broken.json()["error"]["message"]
    few = owner.post("/api/v1/training-datasets", {"model": "assistant", "file": text_file(messages(5)),
                                                   "epsilon_cap": 8, "delta_cap": 1e-3}, format="multipart")
    assert few.status_code == 400 and "at least" in few.json()["error"]["message"]
    assert TrainingDataset.objects.count() == 1


def test_the_privacy_pages_take_a_generative_models_records_and_adapters(assistant) -> None:
    from django.test import Client

    page = Client()
    page.force_login(assistant.actors["owner"].user)
    home = page.get("/privacy/").content.decode()
    assert '<option value="assistant">' in home
    stored = page.post("/privacy/", {"model": "assistant", "file": text_file(messages(30)), "epsilon_cap": 8,
                                     "delta_cap": 1e-3})
    assert stored.status_code == 302, stored.content.decode()[:2000]
    dataset = TrainingDataset.objects.get()
    form = page.get(f"/privacy/datasets/{dataset.pk}/").content.decode()
    assert "LoRA rank" in form and "Adapted layers" in form
    refused = page.post(f"/privacy/datasets/{dataset.pk}/", {"base_version": 1, "target_epsilon": 2, "epochs": 1,
                                                             "batch_size": 8, "learning_rate": 0.002,
                                                             "lr_schedule": "constant", "max_grad_norm": 1.0,
                                                             "lora_targets": "k_proj, nope_proj"})
    assert refused.status_code == 400 and "no Linear layer called nope_proj" in refused.content.decode()
    assert not FineTuneJob.objects.exists()
