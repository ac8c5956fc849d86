"""The OpenAI-compatible API under /v1/: chat and text completions, models (embeddings:
openai_embeddings.py). `base_url="http://host/v1"`.

Requests and answers have OpenAI's shapes, errors too (`{"error": {"message", "type", "param",
"code"}}`, OpenAI's status codes), so that the official SDKs, LangChain and evaluation harnesses
work unchanged. Authentication, roles, tenants and rate limits are Steward's (Bearer API tokens).
Steward's own additions ride beside OpenAI's fields: a `steward` object (the completion's stored
record and its audit receipt) and `X-Steward-*` headers, which OpenAI's clients ignore.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors
from inference.exceptions import ModelNotFound, NotGenerative
from inference.models import CompletionKind, Task
from inference.services import completions
from portal.accounts.roles import Cap
from portal.platform.exceptions import PortalError, api_exception_handler
from portal.platform.replies import WorkerFailed
from portal.platform.streaming import release_request_thread
from portal.web.api import actor_of

# OpenAI's parameters that Steward does not serve: refused by name, never ignored.
UNSUPPORTED = {"tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias",
               "frequency_penalty", "presence_penalty", "parallel_tool_calls", "audio", "modalities", "prediction",
               "reasoning_effort", "service_tier", "store", "metadata", "web_search_options", "best_of", "suffix"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error"}
ROLES = {"system", "developer", "user", "assistant"}


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Steward's error, reshaped as OpenAI's: the same status and sentence, OpenAI's fields."""
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    response.data = openai_error(response.status_code, response.data)
    return response


def openai_error(status: int, body: Any) -> dict[str, Any]:
    error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
    details = error.get("details") or {}
    param = details.get("param") if isinstance(details, dict) else None
    if param is None and isinstance(details, dict) and error.get("code") == "invalid" and details:
        param = next(iter(details))
    code = error.get("code")
    if status == 401:
        code = "invalid_api_key"
    elif status == 429 and code == "quota_exceeded":
        code = "insufficient_quota"
    elif status == 404 and code == "model_not_found":
        code = "model_not_found"
    shaped = {"message": error.get("message", "The request cannot be served."),
              "type": ERROR_TYPES.get(status, "api_error"), "param": param, "code": code}
    if code == "content_filter" and isinstance(details, dict):  # which check refused it, and the record
        shaped["steward"] = {"completion": details.get("completion"), "receipt_index": details.get("receipt_index"),
                             "guard": details.get("guard")}
    return {"error": shaped}


class OpenAIView(APIView):
    def get_exception_handler(self) -> Any:
        return openai_exception_handler


# --- inputs ------------------------------------------------------------------------------------


class RefusingInput(serializers.Serializer):  # type: ignore[type-arg]
    """Refuses OpenAI parameters that Steward does not serve, and unknown ones, naming them."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        for name in sorted(data):
            if name in UNSUPPORTED:
                raise serializers.ValidationError({name: [f"Steward does not support the parameter '{name}'."]})
            if name not in self.fields:
                raise serializers.ValidationError({name: [f"Unknown parameter '{name}'."]})
        return super().to_internal_value(data)


class StreamOptions(serializers.Serializer):  # type: ignore[type-arg]
    include_usage = serializers.BooleanField(required=False, default=False)


class _Common(RefusingInput):
    model = serializers.CharField(max_length=200, help_text="a model name, name@alias or name@version")
    max_tokens = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2, default=1.0, allow_null=True)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1, default=1.0, allow_null=True)
    n = serializers.IntegerField(required=False, min_value=1, default=1, allow_null=True)
    stop = serializers.JSONField(required=False, allow_null=True, help_text="a string or up to 4 strings")
    seed = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**63), max_value=2**63 - 1)
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)
    stream = serializers.BooleanField(required=False, default=False, allow_null=True)
    stream_options = StreamOptions(required=False, allow_null=True)

    def validate_stop(self, value: Any) -> list[str]:
        if value is None:
            return []
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
            raise serializers.ValidationError(gettext('stop must be a string or a list of at most 4 non-empty strings.'))
        return list(stops)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("top_p") == 0:
            raise serializers.ValidationError({"top_p": ["top_p must be above 0."]})
        if attrs.get("stream_options") and not attrs.get("stream"):
            raise serializers.ValidationError({"stream_options": ["stream_options is only allowed with stream: true."]})
        return attrs


class ChatInput(_Common):
    messages = serializers.ListField(child=serializers.JSONField(), allow_empty=False, max_length=256)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    logprobs = serializers.BooleanField(required=False, default=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, min_value=0, max_value=20, allow_null=True)

    def validate_messages(self, value: list[Any]) -> list[dict[str, str]]:
        clean = []
        for number, message in enumerate(value):
            if not isinstance(message, dict) or "role" not in message:
                raise serializers.ValidationError(gettext('messages[%(number)s] must be an object with a role and a content.') % {"number": number})
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise serializers.ValidationError(
                    gettext('messages[%(number)s].role is %(value)s; it must be one of system, developer, user, assistant.') % {"number": number, "value": f"{str(role)[:40]!r}"})
            unknown = sorted(set(message) - {"role", "content", "name"})
            if unknown:
                raise serializers.ValidationError(gettext('messages[%(number)s] has fields Steward does not support: %(value)s.') % {"number": number, "value": ', '.join(unknown)})
            if isinstance(content, list):  # content parts: text only
                texts = []
                for part in content:
                    if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                        raise serializers.ValidationError(gettext('messages[%(number)s].content may hold text parts only.') % {"number": number})
                    texts.append(part["text"])
                content = "".join(texts)
            if not isinstance(content, str):
                raise serializers.ValidationError(gettext('messages[%(number)s].content must be a string.') % {"number": number})
            clean.append({"role": "system" if role == "developer" else role, "content": content})
        if all(m["role"] != "user" for m in clean):
            raise serializers.ValidationError(gettext('messages must hold at least one message whose role is user.'))
        return clean

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        both = attrs.get("max_tokens"), attrs.get("max_completion_tokens")
        if None not in both and both[0] != both[1]:
            raise serializers.ValidationError({"max_completion_tokens": [
                "max_tokens and max_completion_tokens differ; send one of them."]})
        if attrs.get("top_logprobs") and not attrs.get("logprobs"):
            raise serializers.ValidationError({"top_logprobs": ["top_logprobs needs logprobs: true."]})
        return attrs


class TextInput(_Common):
    prompt = serializers.JSONField(help_text="a string (a list of one string is accepted)")
    logprobs = serializers.IntegerField(required=False, min_value=0, max_value=5, allow_null=True,
                                        help_text="the number of most likely tokens to list at each position")
    echo = serializers.BooleanField(required=False, default=False, allow_null=True)

    def validate_prompt(self, value: Any) -> str:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, list):
            raise serializers.ValidationError(gettext('Send one prompt per request (a list of several is not supported).'))
        if not isinstance(value, str) or not value:
            raise serializers.ValidationError(gettext('prompt must be a non-empty string.'))
        return value


def _ask(kind: str, data: dict[str, Any]) -> completions.Ask:
    from django.conf import settings

    if kind == CompletionKind.CHAT:
        max_tokens = data.get("max_completion_tokens")
        max_tokens = data.get("max_tokens") if max_tokens is None else max_tokens
        logprobs, top = bool(data.get("logprobs")), int(data.get("top_logprobs") or 0)
        echo = False
    else:
        max_tokens = data.get("max_tokens")
        logprobs, top = data.get("logprobs") is not None, int(data.get("logprobs") or 0)
        echo = bool(data.get("echo"))
    if max_tokens is None:
        max_tokens = settings.GENERATION_DEFAULT_MAX_TOKENS
    if max_tokens == 0 and not echo:
        raise serializers.ValidationError({"max_tokens": ["max_tokens must be at least 1 (0 only to score a prompt "
                                                          "with echo and logprobs)."]})
    temperature = data.get("temperature")
    return completions.Ask(
        kind=kind, prompt=data["messages"] if kind == CompletionKind.CHAT else data["prompt"], max_tokens=max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if data.get("top_p") is None else float(data["top_p"]), n=data.get("n") or 1,
        stop=data.get("stop") or [], seed=data.get("seed"), logprobs=logprobs, top_logprobs=top, echo=echo,
        user=data.get("user") or "", stream=bool(data.get("stream")),
        include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
    )


# --- outputs -------------------------------------------------------------------------------------


def _steward(result: completions.CompletionResult, language: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"completion": result["id"], "url": reverse("api-completion", args=[result["id"]]),
            "version": result["version"], "device": result["device"], "receipt": result["receipt"],
            "cut_off": result["cancelled"], "ai_generated": True, "guard": result.get("guard") or None,
            "language": language}


def _marked(response: Any, model: str) -> Any:
    """Generated text, marked as such in a machine-readable way (EU AI Act Art. 50(2)), beside the body's
    `steward.ai_generated`: OpenAI's clients ignore the header, a gateway or a logger can read it."""
    response["X-Steward-AI-Generated"] = f'model="{model}"'
    return response


def _chat_logprobs(items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {"content": [{"token": i["token"], "logprob": i["logprob"], "bytes": list(i["token"].encode()),
                         "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in i["top"]]}
                        for i in items], "refusal": None}


def _text_logprobs(items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    offsets, at = [], 0
    for item in items:
        offsets.append(at)
        at += len(item["token"])
    return {"tokens": [i["token"] for i in items], "token_logprobs": [i["logprob"] for i in items],
            "top_logprobs": [dict(i["top"]) if i["top"] else None for i in items], "text_offset": offsets}


def chat_body(result: completions.CompletionResult, model: str, language: dict[str, Any] | None = None,
              ) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{result['id']}", "object": "chat.completion", "created": result["created"], "model": model,
        "system_fingerprint": result["system_fingerprint"],
        "choices": [{"index": c["index"], "message": {"role": "assistant", "content": c["text"], "refusal": None},
                     "logprobs": _chat_logprobs(c["logprobs"]), "finish_reason": c["finish_reason"]}
                    for c in result["choices"]],
        "usage": result["usage"], "steward": _steward(result, language),
    }


def text_body(result: completions.CompletionResult, model: str, language: dict[str, Any] | None = None,
              ) -> dict[str, Any]:
    return {
        "id": f"cmpl-{result['id']}", "object": "text_completion", "created": result["created"], "model": model,
        "system_fingerprint": result["system_fingerprint"],
        "choices": [{"index": c["index"], "text": c["text"], "logprobs": _text_logprobs(c["logprobs"]),
                     "finish_reason": c["finish_reason"]} for c in result["choices"]],
        "usage": result["usage"], "steward": _steward(result, language),
    }


def _receipt_headers(response: Any, result: completions.CompletionResult) -> Any:
    response["X-Steward-Completion"] = str(result["id"])
    response["X-Steward-Receipt-Index"] = str(result["receipt"]["index"])
    response["X-Steward-Receipt-Leaf-Hash"] = result["receipt"]["leaf_hash"]
    return response


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Events:
    """OpenAI's server-sent events for one streamed completion: a first chunk with the role (chat),
    a chunk per text delta, a last chunk per choice with its finish reason (the receipt rides on the
    last), usage if asked, then [DONE]; or an error in OpenAI's shape, then [DONE]."""

    def __init__(self, asked: Any, ask: completions.Ask, model: str) -> None:
        self.ask, self.chat = ask, ask.kind == CompletionKind.CHAT
        self.language = completions.language_notice(asked.stored)
        self.head = {"id": f"{'chatcmpl' if self.chat else 'cmpl'}-{asked.stored.pk}",
                     "object": "chat.completion.chunk" if self.chat else "text_completion",
                     "created": int(time.time()), "model": model}

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse({**self.head, **extra, "choices": choices})

    def opening(self) -> list[bytes]:
        if not self.chat:
            return []
        return [self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None} for i in range(self.ask.n)])]

    def part(self, data: dict[str, Any]) -> bytes:
        if self.chat:
            return self._chunk([{"index": data["index"], "delta": {"content": data["text"]}, "logprobs": None,
                                 "finish_reason": None}])
        return self._chunk([{"index": data["index"], "text": data["text"], "logprobs": None, "finish_reason": None}])

    def answer(self, result: completions.CompletionResult) -> list[bytes]:
        out, last = [], len(result["choices"]) - 1
        for position, choice in enumerate(result["choices"]):
            extra: dict[str, Any] = {"system_fingerprint": result["system_fingerprint"]}
            if position == last:
                extra["steward"] = _steward(result, self.language)
            if self.chat:
                out.append(self._chunk([{"index": choice["index"], "delta": {},
                                         "logprobs": _chat_logprobs(choice["logprobs"]),
                                         "finish_reason": choice["finish_reason"]}], **extra))
            else:
                out.append(self._chunk([{"index": choice["index"], "text": "",
                                         "logprobs": _text_logprobs(choice["logprobs"]),
                                         "finish_reason": choice["finish_reason"]}], **extra))
        if self.ask.include_usage:
            out.append(self._chunk([], usage=result["usage"], system_fingerprint=result["system_fingerprint"]))
        return [*out, b"data: [DONE]\n\n"]

    def error(self, exc: PortalError) -> list[bytes]:
        status = getattr(exc, "status_code", 500)
        return [_sse(openai_error(status, {"error": {"code": getattr(exc, "code", "error"), "message": str(exc),
                                                     "details": getattr(exc, "details", {})}})),
                b"data: [DONE]\n\n"]


def _stream(asked: Any, ask: completions.Ask, model: str) -> Iterator[bytes]:
    """The events from a thread that waits (a WSGI server)."""
    events, finished = _Events(asked, ask, model), False
    try:
        yield from events.opening()
        for kind, data in completions.completion_parts(asked):
            if kind == "part":
                yield events.part(data)
            else:
                finished = True
                yield from events.answer(data)
    except (PortalError, WorkerFailed) as exc:
        finished = True
        yield from events.error(exc)
    finally:
        if not finished:  # the client went away: free the worker's slot now
            completions.completion_abandon(asked)


async def _astream(asked: Any, ask: completions.Ask, model: str) -> AsyncIterator[bytes]:
    """The events from the event loop (the ASGI server): an idle stream holds no thread. A client that
    goes away cancels this generator where it waits; the worker's slot is freed as it ends."""
    events, finished = _Events(asked, ask, model), False
    try:
        await release_request_thread()  # an idle stream holds neither a thread nor a database connection
        for event in events.opening():
            yield event
        async for kind, data in completions.acompletion_parts(asked):
            if kind == "part":
                yield events.part(data)
            else:
                finished = True
                for event in events.answer(data):
                    yield event
    except (PortalError, WorkerFailed) as exc:
        finished = True
        for event in events.error(exc):
            yield event
    finally:
        if not finished:
            await completions.acompletion_abandon(asked)


# --- views ---------------------------------------------------------------------------------------


def _resolve(actor: Any, ref: str, *, trial: bool = False) -> Any:
    version = selectors.version_resolve_for_serving(actor=actor, ref=ref, trial=trial)
    if version.task != Task.GENERATION:
        raise NotGenerative(gettext("The model '%(name)s' classifies; it does not generate text. Use /api/v1/models/%(name2)s/predict for it.") % {"name": version.model.name, "name2": version.model.name}, details={"param": "model"})
    return version


class _CompletionApi(OpenAIView):
    required_capability = Cap.MODEL_PREDICT
    kind = CompletionKind.CHAT
    InputSerializer: type[_Common] = ChatInput

    def post(self, request: Request) -> Any:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ask = _ask(self.kind, data.validated_data)
        actor = actor_of(request)
        # the chat playground (a signed-in page, not a token) lets owners and reviewers try a draft
        version = _resolve(actor, data.validated_data["model"], trial=request.auth is None)
        model = f"{version.model.name}@{version.version}"
        asked = completions.completion_create(actor=actor, version=version, ask=ask,
                                              request_id=getattr(request._request, "request_id", ""))
        if ask.stream:
            # Served by the ASGI server, the stream waits on the event loop; a WSGI server (a
            # deployment's choice, Django's test client) gives it a thread.
            events = (_astream if isinstance(request._request, ASGIRequest) else _stream)(asked, ask, model)
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # a proxy must not hold the tokens back
            response["X-Steward-Completion"] = str(asked.stored.pk)
            return _marked(response, model)
        result = completions.completion_wait(asked)
        language = completions.language_notice(asked.stored)
        body = (chat_body(result, model, language) if self.kind == CompletionKind.CHAT
                else text_body(result, model, language))
        return _marked(_receipt_headers(Response(body), result), model)


class ChatCompletionsApi(_CompletionApi):
    @extend_schema(exclude=True)  # OpenAI's API reference describes it
    def post(self, request: Request) -> Any:
        return super().post(request)


class CompletionsApi(_CompletionApi):
    kind = CompletionKind.TEXT
    InputSerializer = TextInput

    @extend_schema(exclude=True)
    def post(self, request: Request) -> Any:
        return super().post(request)


def _model_body(version: Any) -> dict[str, Any]:
    return {"id": version.model.name, "object": "model", "created": int(version.created_at.timestamp()),
            "owned_by": version.model.organization.slug,
            "steward": {"version": version.version, "weights_sha256": version.artifact_sha256,
                        "card": reverse("model-detail", args=[version.model.name])}}


class ModelListApi(OpenAIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        versions = selectors.openai_models_in_production(actor=actor_of(request))
        return Response({"object": "list", "data": [_model_body(v) for v in versions]})


class ModelDetailApi(OpenAIView):
    required_capability = Cap.MODEL_READ

    @extend_schema(exclude=True)
    def get(self, request: Request, ref: str) -> Response:
        version = selectors.version_resolve_for_serving(actor=actor_of(request), ref=ref)
        if version.task not in (Task.GENERATION, Task.EMBEDDING):
            raise ModelNotFound(gettext('No generative or embedding model named %(ref)s in this organisation.') % {"ref": f"{ref!r}"})
        return Response(_model_body(version))
