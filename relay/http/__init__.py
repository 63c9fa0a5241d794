"""relay's HTTP/1.1 server: trio + h11, keep-alive, late 100-continue, timeouts, limits.

It knows nothing of S3: a handler gets a `Request` and a `RequestBody` and returns a
`Response`. `relay.http.connection` holds the connection lifecycle (its docstring is the
theory of operation), `relay.http.server` the listeners, connection limit and shutdown.
"""

from relay.http.config import DEFAULT_HTTP_CONFIG, HttpConfig
from relay.http.connection import GracefulShutdown, Handler, RequestBody, serve_connection
from relay.http.exchange import Exchange, ExchangeObserver, HttpActivity
from relay.http.messages import (
    BadRequestBody,
    BodyTimeout,
    ClientDisconnected,
    Request,
    RequestBodyError,
    Response,
    WriterBody,
)
from relay.http.server import serve_http, serve_http_listeners

__all__ = [
    "DEFAULT_HTTP_CONFIG",
    "BadRequestBody",
    "BodyTimeout",
    "ClientDisconnected",
    "Exchange",
    "ExchangeObserver",
    "GracefulShutdown",
    "Handler",
    "HttpActivity",
    "HttpConfig",
    "Request",
    "RequestBody",
    "RequestBodyError",
    "Response",
    "WriterBody",
    "serve_connection",
    "serve_http",
    "serve_http_listeners",
]
