"""Every role opens the page of every kind of model: a generative and an embedding model have no
global explanation, and their page said so with a 500 to every owner, reviewer, auditor and admin
(a KeyError in the explanations section) until session 26."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("kind", ["assistant", "embedder"])
def test_every_role_opens_a_generative_or_embedding_models_page(request, kind) -> None:
    served = request.getfixturevalue(kind)
    for role in Role:
        page = Client()
        page.force_login(served.actors[role.value].user)
        shown = page.get(f"/models/{kind}/")
        assert shown.status_code == 200, (role, shown.content[:500])
        assert f"<h1>{kind} " in shown.content.decode() and 'data-testid="status">v1 approved' in shown.content.decode()
        assert 'data-testid="global-explanations"' not in shown.content.decode()
