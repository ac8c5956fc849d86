"""The browser's error pages are the portal's own (its layout, what happened, where to go), not
Django's bare defaults; the API's stay JSON."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from portal.accounts.roles import Role
from portal.platform.exceptions import handler500
from tests.portal.accounts.factories import PASSWORD, OrganizationFactory, member

pytestmark = pytest.mark.django_db


def test_a_page_that_does_not_exist_is_a_404_in_the_portals_layout() -> None:
    organization = OrganizationFactory()
    client = Client()
    assert client.login(username=member(Role.CONSUMER, organization).username, password=PASSWORD)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'data-testid="error-page"' in page and "Not found" in page and "/no-such-page/" in page
    assert 'aria-label="Main"' in page  # the navigation of a signed-in member
    anonymous = Client().get("/no-such-page/")
    assert anonymous.status_code == 404 and 'data-testid="error-page"' in anonymous.content.decode()
    assert 'aria-label="Main"' not in anonymous.content.decode()


def test_the_api_answers_404_in_json() -> None:
    response = Client().get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_server_error_page_gives_the_request_id_to_quote() -> None:
    request = RequestFactory().get("/models/")
    request.request_id = "4f1c0ffee"
    response = handler500(request)
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "4f1c0ffee" in page and "steward.css" in page
    api = RequestFactory().get("/api/v1/models")
    api.request_id = "abc123"
    answer = handler500(api)
    assert answer.status_code == 500 and b'"request_id": "abc123"' in answer.content
