"""routatic-asgi: keep Anthropic and OpenAI clients working when their provider does not.

A chain of pure ASGI middlewares: `InboundAuth` → `FallbackRouter` → `AuthShortCircuit` →
`CircuitBreaker` → `UpstreamRelay`, assembled by `build_app(config)`. Each class is usable
alone; `UpstreamRelay` serves the attempt its scope describes (`routatic.request`,
`routatic.attempt`).
"""

__version__ = "0.1.0"  # the one place the version is written; pyproject.toml reads it

from routatic_asgi.app import RoutaticApp, build_app
from routatic_asgi.attempt import Attempt, Credential, InboundRequest, Target
from routatic_asgi.breaker import CircuitBreaker
from routatic_asgi.classify import Kind, Outcome, classify_response
from routatic_asgi.config import Config, default_config, load_config, parse_config
from routatic_asgi.errors import ConfigError, RoutaticError, UnanswerableEndpoint
from routatic_asgi.inbound_auth import InboundAuth
from routatic_asgi.keyring import Keyring
from routatic_asgi.relay import UpstreamRelay
from routatic_asgi.router import FallbackRouter
from routatic_asgi.routing import Routing
from routatic_asgi.short_circuit import AuthShortCircuit
from routatic_asgi.state import MemoryStore, RedisStore, StateStore
from routatic_asgi.status_page import BrowserKey
from routatic_asgi.telemetry import RequestRecording, Telemetry
from routatic_asgi.telemetry.capture import DebugCapture
from routatic_asgi.transitions import Board, Transition
from routatic_asgi.upstream import Upstreams

__all__ = [
    "Attempt",
    "AuthShortCircuit",
    "Board",
    "BrowserKey",
    "CircuitBreaker",
    "Config",
    "ConfigError",
    "Credential",
    "DebugCapture",
    "FallbackRouter",
    "InboundAuth",
    "InboundRequest",
    "Keyring",
    "Kind",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "RequestRecording",
    "RoutaticApp",
    "RoutaticError",
    "Routing",
    "StateStore",
    "Target",
    "Telemetry",
    "Transition",
    "UnanswerableEndpoint",
    "UpstreamRelay",
    "Upstreams",
    "build_app",
    "classify_response",
    "default_config",
    "load_config",
    "parse_config",
]
