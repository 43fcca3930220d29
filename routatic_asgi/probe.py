"""`check --probe`: ask each provider's models endpoint whether its URL and keys work.

Only ever run when asked (it spends a request per key). It reports, per provider and key,
reachable / path wrong / key rejected / unreachable with the reason; it never prints a key
(a key shows as provider#index and its last four characters) and never follows a redirect.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from routatic_asgi.config import Config, ProviderConfig

__all__ = ["ProbeResult", "connect_failure", "probe"]

_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProbeResult:
    provider: str  # "zen#0 …a1b2", or the provider's name when it has no key of its own
    url: str
    verdict: str  # reachable | path wrong | key rejected | unreachable | unexpected
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict == "reachable"


def probe(config: Config, *, transport: httpx.BaseTransport | None = None) -> list[ProbeResult]:
    """One GET of each provider's models endpoint per configured key (one without a key)."""
    results = []
    with httpx.Client(
        timeout=_TIMEOUT, follow_redirects=False, trust_env=False, transport=transport
    ) as client:
        for name, provider in config.providers.items():
            path = "/v1/models" if provider.protocol == "anthropic" else "/models"
            url = provider.base_url + path
            for label, key in _credentials(name, provider):
                results.append(_one(client, provider, label, url, key))
    return results


def _credentials(name: str, provider: ProviderConfig) -> Iterator[tuple[str, str | None]]:
    if provider.keys:
        for index, key in enumerate(provider.keys):
            secret = key.get_secret_value()
            yield f"{name}#{index} …{secret[-4:]}", secret
    elif provider.key_command:
        yield f"{name} (key_command)", _command_key(provider.key_command)
    else:
        yield name, None


def _command_key(command: str) -> str | None:
    try:
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _one(
    client: httpx.Client, provider: ProviderConfig, label: str, url: str, key: str | None
) -> ProbeResult:
    headers = dict(provider.headers)
    if provider.protocol == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return ProbeResult(label, url, "unreachable", connect_failure(exc, url))
    status = response.status_code
    if 200 <= status < 300:
        return ProbeResult(label, url, "reachable", f"{status}")
    if status in (401, 403):
        if provider.passthrough or provider.auth == "none":
            detail = f"{status} without a key: the URL answers; clients bring their own credential"
            return ProbeResult(label, url, "reachable", detail)
        return ProbeResult(label, url, "key rejected", f"{status}: check the key")
    if status in (404, 405):
        return ProbeResult(
            label, url, "path wrong", f"{status}: is base_url the API root (see `check`)?"
        )
    return ProbeResult(label, url, "unexpected", f"answered {status}")


def connect_failure(exc: BaseException, url: str) -> str:
    """`host:port: reason` for a failed connection: refused, DNS, TLS or timeout."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    text = f"{exc!r} {exc.__cause__!r} {exc.__context__!r}".lower()
    if isinstance(exc, httpx.TimeoutException):
        return f"{where}: timed out"
    if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) or "ssl" in text:
        return f"{where}: TLS handshake failed"
    if "name or service not known" in text or "nodename" in text or "getaddrinfo" in text:
        return f"{where}: DNS lookup failed (no such host)"
    if "refused" in text:
        return f"{where}: connection refused (nothing listens there)"
    return f"{where}: {type(exc).__name__}"
