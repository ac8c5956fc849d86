"""Models are honest about their languages: a card lists what a model supports; an input in another
language is still answered, with a notice in the answer and the UI, and counted on the model page."""

from __future__ import annotations

import pytest
from django.test import Client

from inference import languages
from inference.models import Prediction
from tests.inference.factories import CARD, bearer_client, serve_model
from tests.portal.accounts.factories import OrganizationFactory

ENGLISH = "What a wonderful, moving film; I would watch it again tomorrow."
CHINESE = "这部电影非常无聊，我看了一半就走了。"
FRENCH = "Ce film est vraiment ennuyeux et beaucoup trop long."


@pytest.mark.parametrize(("text", "code"), [
    (ENGLISH, "en"), (CHINESE, "zh"), (FRENCH, "fr"), ("今天天气不错", "zh"),
    ("ok", None), ("Say hello.", None), ("12345 67890", None),
    ("この映画はとても退屈でした。", "ja"),  # Han characters with kana: Japanese, not Chinese
])
def test_a_language_is_named_only_where_it_is_clear(text, code) -> None:
    assert languages.detect(text) == code


def test_the_cards_languages_are_known_codes() -> None:
    assert languages.parse("en, ZH; en") == ["en", "zh"]
    assert languages.supported({"languages": "en"}) == ["en"] and languages.supported({}) == []
    with pytest.raises(ValueError, match="'english' is not one Steward recognises"):
        languages.parse("english")
    flagged = languages.unsupported({"languages": "en"}, [ENGLISH, CHINESE, "ok"])
    assert flagged == [{"input": 1, "detected": "zh"}]
    notice = languages.notice({"languages": "en"}, flagged)
    assert notice["message"].startswith("This model was trained on English; this input looks like Chinese.")
    assert languages.unsupported({"languages": ""}, [CHINESE]) == []  # a card that says nothing flags nothing


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_input_in_another_language_is_answered_flagged_and_counted(celery_worker, sentiment_bytes) -> None:
    served = serve_model(OrganizationFactory(slug="press"), name="sentiment", task="text-classification",
                         archive=sentiment_bytes, card={**CARD, "languages": "en"})
    api = bearer_client(served)
    english = api.post("/api/v1/models/sentiment/predict", {"inputs": [ENGLISH]}, format="json")
    assert english.status_code == 200 and english.json()["language"] is None
    mixed = api.post("/api/v1/models/sentiment/predict", {"inputs": [ENGLISH, CHINESE, FRENCH]}, format="json")
    assert mixed.status_code == 200, mixed.content
    body = mixed.json()
    assert len(body["predictions"]) == 3  # still answered
    assert body["language"]["supported"] == ["en"]
    assert body["language"]["inputs"] == [{"input": 1, "detected": "zh"}, {"input": 2, "detected": "fr"}]
    assert "trained on English; these inputs look like other languages" in body["language"]["message"]
    chinese = api.post("/api/v1/models/sentiment/predict", {"inputs": [CHINESE]}, format="json").json()
    assert chinese["language"]["message"].startswith("This model was trained on English; this input looks like Chinese")
    assert list(Prediction.objects.filter(model_version=served.version).order_by("pk")
                .values_list("unsupported_language", flat=True)) == ["", "zh", "zh"]
    # the model page counts them, and the playground says so beside the answer
    page = Client()
    page.force_login(served.actors["owner"].user)
    html = page.get("/models/sentiment/").content.decode()
    assert "English (en)" in html
    assert "2 requests looked like a language the card does not list" in html and "Chinese (2)" in html
    answer = page.post("/models/sentiment@1/playground/predict/", {"text": CHINESE}).content.decode()
    assert 'data-testid="language-notice"' in answer and "looks like Chinese" in answer


@pytest.mark.django_db(transaction=True)
def test_embeddings_of_text_in_another_language_carry_the_notice(live_server, embedder) -> None:
    import openai

    from inference.models import ModelVersion
    from tests.portal.accounts.factories import token_for
    from tests.waits import patience

    ModelVersion.objects.filter(pk=embedder.version.pk).update(card={**embedder.version.card, "languages": "en"})
    secret = token_for(embedder.actors["consumer"].user, embedder.org, "consumer").secret
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=patience(120))
    english = client.embeddings.create(model="embedder", input=[ENGLISH])
    assert english.model_extra["steward"]["language"] is None
    mixed = client.embeddings.create(model="embedder", input=[ENGLISH, CHINESE])
    assert len(mixed.data) == 2  # embedded all the same
    assert mixed.model_extra["steward"]["language"]["inputs"] == [{"input": 1, "detected": "zh"}]
    assert Prediction.objects.get(pk=mixed.model_extra["steward"]["prediction"]).unsupported_language == "zh"
