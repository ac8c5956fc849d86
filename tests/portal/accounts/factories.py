from __future__ import annotations

import factory

from audit.log.services import AuditActor
from portal.accounts.models import Membership, Organization, User
from portal.accounts.roles import Role
from portal.accounts.services import NewToken, token_create_unchecked

PASSWORD = "correct horse battery staple"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organisation {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.CONSUMER


def member(role: Role | str, organization: Organization | None = None, **user_fields) -> User:
    """A user who is a member of `organization` (a new one if None) with `role`."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, organization=organization or OrganizationFactory(), role=Role(role))
    return user


def token_for(
    user: User, organization: Organization, role: Role | str | None = None, **kwargs
) -> NewToken:
    membership = Membership.objects.get(user=user, organization=organization)
    return token_create_unchecked(
        user=user,
        organization=organization,
        name=kwargs.pop("name", "test"),
        role=Role(role or membership.role),
        expires_in_days=kwargs.pop("expires_in_days", 30),
        rate_per_minute=kwargs.pop("rate_per_minute", None),
        actor=AuditActor.system("tests"),
    )
