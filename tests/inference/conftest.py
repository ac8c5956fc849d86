from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from inference.models import ModelVersion
from inference.services.registry import alias_move, model_version_register, model_version_transition
from portal.accounts.actor import Actor, actor_for_membership
from portal.accounts.models import Organization
from portal.accounts.roles import Role
from tests.inference.factories import CARD, sentiment_archive, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, member


@dataclass
class Served:
    org: Organization
    actors: dict[str, Actor]
    version: ModelVersion


def serve_model(org: Organization, *, name: str, task: str, archive: bytes) -> Served:
    actors = {role.value: actor_for_membership(member(role, org), org, role) for role in Role}
    version = model_version_register(actor=actors["owner"], name=name, task=task, archive=io.BytesIO(archive), card=CARD)
    model_version_transition(actor=actors["owner"], version=version, action="submit")
    model_version_transition(actor=actors["reviewer"], version=version, action="approve", comment="ok")
    alias_move(actor=actors["owner"], model=version.model, alias="production", version=version)
    version.refresh_from_db()
    return Served(org=org, actors=actors, version=version)


@pytest.fixture
def tabular(db, tmp_path) -> Served:
    return serve_model(OrganizationFactory(slug="bank"), name="credit", task="tabular-classification",
                       archive=tiny_tabular_archive(tmp_path / "tiny"))


@pytest.fixture(scope="session")
def sentiment_bytes() -> bytes:
    return sentiment_archive()
