"""relay: an S3 front door for content-addressed storage.

The embedding API. A trio program opens relay's storage engine in its own task tree::

    from relay import load_config, open_storage

    async with open_storage(load_config(data_dir=Path("relay-data"))) as engine:
        await engine.create_bucket("photos")
        await engine.put_object("photos", "cat.jpg", body_chunks)

or runs the whole S3 server in its own nursery (``host, port`` once it accepts)::

    from relay import load_config, serve

    host, port = await nursery.start(serve, load_config(data_dir=Path("relay-data")))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.bucket.engine import Engine, EngineConfig, ListPage, open_engine
    from relay.bucket.manifest import Manifest
    from relay.bucket.reader import ObjectStream
    from relay.config import Config, ConfigError, load_config
    from relay.server import serve
    from relay.storage import open_blob_store, open_storage
    from relay.version import VERSION

# Loaded on first use (PEP 562): importing a pure core such as ``relay.mst`` must not pull
# in trio and the whole engine through this package's ``__init__``.
_EXPORTS = {
    "Config": "relay.config",
    "ConfigError": "relay.config",
    "Engine": "relay.bucket.engine",
    "EngineConfig": "relay.bucket.engine",
    "ListPage": "relay.bucket.engine",
    "Manifest": "relay.bucket.manifest",
    "ObjectStream": "relay.bucket.reader",
    "load_config": "relay.config",
    "open_blob_store": "relay.storage",
    "open_engine": "relay.bucket.engine",
    "open_storage": "relay.storage",
    "serve": "relay.server",
    "VERSION": "relay.version",
}

__all__ = [
    "VERSION",
    "Config",
    "ConfigError",
    "Engine",
    "EngineConfig",
    "ListPage",
    "Manifest",
    "ObjectStream",
    "load_config",
    "open_blob_store",
    "open_engine",
    "open_storage",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
