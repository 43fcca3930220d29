"""The upstream relay, the innermost layer: one attempt, one upstream call, relayed.

- `middleware`: `UpstreamRelay`, the ASGI app: prepares the call and makes it;
- `call`: `RelayCall`, the parameters of one call as one object, and `RelaySettings`;
- `headers`: which headers go upstream and which come back;
- `answer`: relaying an error or a body; `stream`: relaying a stream event by event.
"""

from routatic_asgi.relay.middleware import UpstreamRelay

__all__ = ["UpstreamRelay"]
