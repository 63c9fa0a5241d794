"""relay: an S3 front door for content-addressed storage.

The embedding API. A trio program opens relay's storage engine in its own task tree::

    from relay import load_config, open_storage

    async with open_storage(load_config(data_dir=Path("relay-data"))) as engine:
        await engine.create_bucket("photos")
        await engine.put_object("photos", "cat.jpg", body_chunks)
"""

from relay.bucket.engine import Engine, EngineConfig, ListPage, ObjectStream, open_engine
from relay.bucket.manifest import Manifest
from relay.config import Config, ConfigError, load_config
from relay.storage import open_blob_store, open_storage

__all__ = [
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
]
