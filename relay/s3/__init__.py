"""The S3 front door: S3's operations over the storage engine (``relay.bucket``).

This is the package's face. ``S3App`` is the HTTP handler ``relay.server`` runs: it routes
a request (``routing.route``, pure and table-tested), authenticates it (``relay.sigv4``),
checks its headers against the audit table (``headers``), and dispatches it to the module
of its operation family (``objects``, ``buckets``, ``listing``, ``multipart``, ``copy``,
``tagging``); all XML is in ``xml``, every error code in ``errors`` (``S3Error``, and
``from_exception``, the one conversion of lower layers' errors).
"""

from relay.s3.app import S3App
from relay.s3.errors import S3Error, from_exception
from relay.s3.routing import Endpoint, Target, route, split_target

__all__ = ["Endpoint", "S3App", "S3Error", "Target", "from_exception", "route", "split_target"]
