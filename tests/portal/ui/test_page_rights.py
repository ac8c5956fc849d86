"""Every page behind a capability: a member whose role lacks it gets the 403 page naming what the
role does not allow, before the page looks anything up; a role that holds it gets past the gate."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts.roles import Role
from tests.portal.accounts.factories import PASSWORD, OrganizationFactory, member

pytestmark = pytest.mark.django_db

MISSING = 999_999  # no such object: past the gate, a page answers 404 (or its form), never 403

# (method, path, a role without the capability, a role with it, what the 403 page says)
GATED = [
    ("get", "/members/", Role.OWNER, Role.ADMIN, "manage members"),
    ("get", "/models/register/", Role.CONSUMER, Role.OWNER, "register models"),
    ("post", "/models/sentiment/playground/predict/", Role.AUDITOR, Role.CONSUMER, "call models"),
    ("post", f"/predictions/{MISSING}/explain/", Role.AUDITOR, Role.CONSUMER, "explain predictions"),
    ("post", "/models/sentiment/versions/1/global-explanations/", Role.CONSUMER, Role.OWNER, "compute global explanations"),
    ("get", f"/global-explanations/{MISSING}/", Role.CONSUMER, Role.AUDITOR, "read global explanations"),
    ("get", "/privacy/", Role.CONSUMER, Role.OWNER, "see training datasets"),
    ("get", f"/privacy/datasets/{MISSING}/", Role.CONSUMER, Role.OWNER, "see training datasets"),
    ("get", f"/fine-tunes/{MISSING}/", Role.CONSUMER, Role.OWNER, "see fine-tuning jobs"),
    ("get", "/models/sentiment/versions/1/bias/", Role.CONSUMER, Role.REVIEWER, "read bias reports"),
    ("get", f"/bias-reports/{MISSING}/", Role.CONSUMER, Role.AUDITOR, "read bias reports"),
    ("get", "/settings/fairness/", Role.CONSUMER, Role.AUDITOR, "read the fairness policy"),
    ("get", "/models/sentiment/versions/1/exports/", Role.CONSUMER, Role.AUDITOR, "read compliance exports"),
    ("get", "/exports/", Role.CONSUMER, Role.AUDITOR, "read compliance exports"),
    ("get", f"/exports/{MISSING}/", Role.CONSUMER, Role.AUDITOR, "read compliance exports"),
    ("get", f"/exports/{MISSING}/download/", Role.CONSUMER, Role.AUDITOR, "read compliance exports"),
    ("get", "/audit/", Role.OWNER, Role.AUDITOR, "read the audit log"),
    ("get", f"/audit/entries/{MISSING}/", Role.CONSUMER, Role.AUDITOR, "read the audit log"),
    ("get", "/audit/verification/", Role.REVIEWER, Role.AUDITOR, "read the audit log"),
    ("post", "/audit/checkpoint/", Role.CONSUMER, Role.ADMIN, "read the audit log"),
]


def _client(role: Role, organization) -> Client:
    client = Client()
    assert client.login(username=member(role, organization).username, password=PASSWORD)
    return client


@pytest.mark.parametrize(("method", "path", "without", "holder", "what"), GATED, ids=[g[1] for g in GATED])
def test_a_page_refuses_roles_without_its_capability(method, path, without, holder, what) -> None:
    organization = OrganizationFactory()
    refused = getattr(_client(without, organization), method)(path)
    assert refused.status_code == 403
    assert b"Not allowed" in refused.content and what.encode() in refused.content
    allowed = getattr(_client(holder, organization), method)(path)
    assert allowed.status_code != 403, allowed.content[:300]
