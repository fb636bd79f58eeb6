"""Reading requests the way the service does: bodies, parameter names, authentication."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint

__all__ = ["BadBody", "Upload", "Form", "parse_body", "check_auth"]

FORM_URLENCODED = "application/x-www-form-urlencoded"


class BadBody(ValueError):
    """The body cannot be read as the content type it claims."""


@dataclass
class Upload:
    """A file part of a multipart body."""

    filename: str | None
    content: bytes


@dataclass
class Form:
    """Parameters of one request, under whatever name the client used."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """A parameter by its flat name, accepting the nested image_request[...] form too."""
        for key in (f"image_request[{name}]", name):
            if key in self.fields:
                return self.fields[key]
        return None

    def file(self, name: str) -> Upload | None:
        """A file part by its flat name, accepting the nested form too."""
        for key in (f"image_request[{name}]", name):
            if key in self.files:
                return self.files[key]
        return None


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split 'type; a=1; b="x"' into ('type', {'a': '1', 'b': 'x'})."""
    main, *rest = value.split(";")
    params = {}
    for item in rest:
        key, sep, raw = item.strip().partition("=")
        if sep:
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            params[key.strip().lower()] = raw
    return main.strip().lower(), params


def _multipart(body: bytes, boundary: str) -> Form:
    # Split on the delimiter ourselves: the file part is arbitrary binary, and
    # only the exact CRLF--boundary sequence may end it.
    form = Form()
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise BadBody("multipart body without its boundary")
    chunks = body[start + len(delimiter) :].split(b"\r\n" + delimiter)
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        if not chunk.startswith(b"\r\n"):
            raise BadBody("malformed multipart delimiter")
        head, sep, content = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise BadBody("multipart part without headers")
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        _, params = _header_params(disposition)
        if "name" not in params:
            raise BadBody("multipart part without a name")
        if "filename" in params:
            form.files[params["name"]] = Upload(params["filename"], content)
        else:
            form.fields[params["name"]] = content.decode("utf-8", "replace")
    else:
        raise BadBody("multipart body without its closing delimiter")
    return form


def _flatten(value: object, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}[{key}]" if prefix else str(key), out)
    elif value is not None:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)


def parse_body(content_type: str, body: bytes, query: str) -> Form:
    """Parameters from the query string and a multipart, form-encoded or JSON body."""
    form = Form(fields=dict(parse_qsl(query, keep_blank_values=True)))
    kind, params = _header_params(content_type or "")
    if not body:
        return form
    if kind == "multipart/form-data":
        if "boundary" not in params:
            raise BadBody("multipart body without a boundary parameter")
        parsed = _multipart(body, params["boundary"])
        form.fields.update(parsed.fields)
        form.files.update(parsed.files)
    elif kind == "application/json":
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise BadBody(f"invalid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise BadBody("JSON body must be an object")
        # {"image_request": {"locale": ...}} becomes image_request[locale].
        flat: dict[str, str] = {}
        _flatten(document, "", flat)
        form.fields.update(flat)
    else:
        form.fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return form


class _Validator(RequestValidator):
    """Two-legged OAuth1: one consumer key and secret, no tokens."""

    def __init__(self, key: str, secret: str) -> None:
        super().__init__()
        self.key = key
        self.secret = secret

    enforce_ssl = False  # loopback HTTP
    allowed_signature_methods = ("HMAC-SHA1",)
    dummy_client = "dummy-client"

    def check_client_key(self, client_key: str) -> bool:
        # The emulator's keys are chosen by its user; compare, don't judge the format.
        return bool(client_key)

    def check_nonce(self, nonce: str) -> bool:
        return bool(nonce)

    def validate_client_key(self, client_key: str, request: object) -> bool:
        return hmac.compare_digest(client_key, self.key)

    def get_client_secret(self, client_key: str, request: object) -> str:
        return self.secret if hmac.compare_digest(client_key, self.key) else "dummy-secret"

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: object,
        nonce: str,
        request: object,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        # oauthlib already keeps the timestamp within 10 minutes. Nonces are not
        # remembered: a client resending a request the emulator dropped must
        # not look like a bad key.
        return True


def check_auth(key: str, secret: str, *, method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
    """None when the request is authenticated, else a message that does not echo the key."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "cloudsight":
        if hmac.compare_digest(credentials.strip().encode(), key.encode()):
            return None
        return "invalid API key"
    if scheme.lower() == "oauth":
        endpoint = SignatureOnlyEndpoint(_Validator(key, secret))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        kind, params = _header_params(content_type)
        text = body.decode("utf-8", "replace") if kind == FORM_URLENCODED else ""
        if kind == "multipart/form-data" and body:
            # As the official clients sign (cloudsight 0.9.2 auth.py, cloudsight-ruby): the non-file fields
            # of a multipart upload belong to the base string, as if the body were form-encoded.
            try:
                fields = _multipart(body, params.get("boundary", "")).fields
            except BadBody:
                return "invalid OAuth signature or consumer key"
            text = urlencode(list(fields.items()))
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            headers["Content-Type"] = FORM_URLENCODED
        try:
            valid, _ = endpoint.validate_request(url, method, text, headers)
        except ValueError:
            valid = False
        return None if valid else "invalid OAuth signature or consumer key"
    return "missing Authorization header (CloudSight <key> or OAuth 1.0a)"
