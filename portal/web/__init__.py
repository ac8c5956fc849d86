"""What the apps' API views and pages share: the caller's actor and strict serializers (api),
the OpenAPI conventions (openapi), and the page decorators that check membership and
capabilities (access). Above accounts, below the apps."""
