"""What every API operation shares: the error bodies, the exception handler that keeps them to the
documented shapes, the check of JSON types, and the schema generator that documents the errors an
operation can answer.

Every error body of the API is a JSON object: `{"detail": "..."}` (a message, in Korean where the
message is ours), or for bad input the messages per field as DRF gives them,
``{"max_positions": ["이 값이 1보다 크거나 같은지 확인하십시오."]}`` (some operations add a `detail`).
The schema (drf-spectacular, `/api/schema/`) documents, besides what a view declares itself, the
errors that the framework answers for every operation alike (`AutoSchema.common_errors`), so that a
client generated from it knows every status code it can get; the contract test
(`trading_site/tests/test_api_contract.py`, schemathesis) checks the two agree.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.utils import html
from rest_framework.views import exception_handler as drf_exception_handler

# The largest id a BigAutoField holds (signed 64 bits): a filter or body with a larger one is a 400, never
# a query (SQLite's driver raises OverflowError on it).
MAX_ID = 2**63 - 1

# ------------------------------------------------------------------------------------------------ bodies


class ErrorSerializer(serializers.Serializer):
    """`{"detail": "..."}`: every error the API answers."""

    detail = serializers.CharField(help_text="what went wrong")


class ValidationErrorSerializer(serializers.Serializer):
    """`{"<field>": ["..."]}` (and/or `{"detail": "..."}`): bad input, nothing stored. Documented by
    ValidationErrorSchema (the field names vary, so they are additional properties)."""

    detail = serializers.CharField(required=False, help_text="a problem that is not one field's")


class Conflict(exceptions.APIException):
    """409 `{"detail": "..."}`: the request contradicts the stored state (e.g. deleting what the trading
    history needs)."""

    status_code = 409
    default_detail = "요청이 현재 상태와 충돌합니다."
    default_code = "conflict"


class ValidationErrorSchema(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def get_name(self, auto_schema, direction):
        return "ValidationError"

    def map_serializer(self, auto_schema, direction):
        return {
            "type": "object",
            "description": "Bad input; nothing was stored. Each field at fault has its messages under its own "
                           "name: a list of messages, or an object of the nested fields' messages, e.g. "
                           "`{\"params\": {\"window\": [\"...\"]}}`; `non_field_errors` holds the messages of "
                           "rules across fields; `detail`, when present, says the problem in one sentence.",
            "properties": {"detail": {"type": "string", "description": "the problem, in one sentence"}},
            "additionalProperties": {
                "description": "the messages of the field of this name",
                "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
            },
        }


# ------------------------------------------------------------------------------------------------ input
def _is_string(value) -> bool:
    return isinstance(value, str)


def _is_boolean(value) -> bool:
    return isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


JSON_TYPES = (  # (field class, the JSON type the schema gives it, its Korean name); the first match counts
    (serializers.BooleanField, _is_boolean, "true 또는 false"),
    (serializers.IntegerField, _is_integer, "정수"),
    (serializers.CharField, _is_string, "문자열"),
    (serializers.ChoiceField, _is_string, "문자열"),
    (serializers.PrimaryKeyRelatedField, _is_integer, "정수 id"),
)


class JsonTypesMixin:
    """A JSON body's values must have the types the schema gives them. DRF reads `0` as false, `5` as
    "5" and "true" as true; a client that sends those has a bug the API should name, not guess at. A
    form (the browsable API) sends only text, which DRF's fields read as before."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and not html.is_html_input(data):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or name not in data or data[name] is None:
                    continue
                for field_class, matches, expected in JSON_TYPES:
                    if isinstance(field, field_class):
                        if not matches(data[name]):
                            errors[name] = [f"{expected} 값이어야 합니다."]
                        break
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# ------------------------------------------------------------------------------------------------ errors
def exception_handler(exc, context):
    """DRF's handler, with the bodies the schema documents: an object with a string `detail`, or a
    validation error's messages per field (DRF's list of messages for the whole body becomes
    `non_field_errors`). Django's request-size limits (too many fields or files, too large a body)
    answer 400 rather than an HTML page, and a 404 says it in the site's language rather than
    Django's "No Order matches the given query."."""
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        exc = exceptions.ParseError("요청이 너무 큽니다 (필드나 파일이 너무 많거나 본문이 너무 깁니다).")
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("요청을 읽을 수 없습니다.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    elif isinstance(response.data, dict) and isinstance(response.data.get("detail"), list):
        # A rule reported under "detail" (no field to name): `detail` stays one string.
        response.data["detail"] = " ".join(str(message) for message in response.data["detail"])
    return response


@csrf_exempt  # a POST with a session cookie gets the same JSON 404, not the CSRF failure page
def not_found(request, *args, **kwargs):
    """A JSON 404 for an address under the API that matches no operation (the site's own 404 is a page)."""
    return JsonResponse({"detail": _("Not found.")}, status=404, json_dumps_params={"ensure_ascii": False})


# ------------------------------------------------------------------------------------------------ schema
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ERROR_DESCRIPTIONS = {
    400: "bad input: the messages per field; nothing was stored",
    401: "not logged in: no, an invalid or an expired token (send `Authorization: Bearer <access token>`)",
    403: "not allowed: e.g. a session-authenticated change without its CSRF token",
    404: "no such object of yours, or no such page of the list",
    415: "the body's Content-Type is not one this operation reads",
    429: "too many requests: try again after `Retry-After` seconds",
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's generator, documenting besides each operation's own answers the errors the
    framework gives every operation alike (see `common_errors`), with their bodies. A view's own
    declaration of a status code wins."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, serializer in self.common_errors().items():
            if str(code) not in responses:
                response = OpenApiResponse(serializer, description=ERROR_DESCRIPTIONS[code])
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return dict(sorted(responses.items()))

    def map_parsers(self):
        # The API is JSON. DRF reads forms too (the browsable API posts them), but a form has no null, no
        # number and no nested object, so it is documented only where a view takes forms by design and
        # says so with its own parser_classes (`POST /token`, `POST /trade/{symbol}`).
        media_types = super().map_parsers()
        declares_parsers = any(
            "parser_classes" in vars(cls) for cls in type(self.view).__mro__
            if not cls.__module__.startswith("rest_framework.")
        )
        return media_types if declares_parsers else [JSONParser.media_type]

    def _get_parameters(self):
        # Every optional query parameter of this API takes an empty value as not given (`?code=&side=buy`
        # is `?side=buy`), as an HTML form sends it; the schema says so.
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def common_errors(self) -> dict[int, type[serializers.Serializer]]:
        view = self.view
        permission_classes = getattr(view, "permission_classes", [])
        needs_login = any(cls is not permissions.AllowAny for cls in permission_classes)
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        parameters = self._get_parameters()
        paging = {"page", "page_size", "limit", "offset", "cursor"}
        has_query = any(parameter["in"] in ("query", "header") and parameter["name"] not in paging
                        for parameter in parameters)
        has_path = any(parameter["in"] == "path" for parameter in parameters)
        paginated = self._is_list_view() and self._get_paginator() is not None
        errors: dict[int, type[serializers.Serializer]] = {}
        if has_body or has_query:
            errors[400] = ValidationErrorSerializer
        if needs_login:
            errors[401] = ErrorSerializer
            session = any(issubclass(cls, SessionAuthentication) for cls in getattr(view, "authentication_classes", []))
            if session and self.method in UNSAFE_METHODS:
                errors[403] = ErrorSerializer
        if has_path or paginated:
            errors[404] = ErrorSerializer
        if has_body:
            errors[415] = ErrorSerializer
        if getattr(view, "throttle_classes", None):
            errors[429] = ErrorSerializer
        return errors
