"""Child process: run ONE test function of MinIO's tests.py the way its main() runs each.

Usage: ``python minio_child.py SUITE_PATH TEST_NAME`` with the environment main() reads
(SERVER_ENDPOINT, ACCESS_KEY, SECRET_KEY, ENABLE_HTTPS, DATA_DIR). It sets the suite's
module globals exactly as main() does (``_client``, ``_is_aws``, ``_test_file``,
``_large_file``; over plain http main() passes no SSE-C arguments, so neither does this)
and calls the suite's ``_call_test(function)``, which prints one JSON result line.
Exit status: 0 for PASS or NA, 1 for FAIL.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


def load_suite(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("minio_functional_tests", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_up_like_main(suite: ModuleType) -> None:
    """The part of tests.py's main() that comes before its loop over the tests."""
    from minio import Minio

    endpoint = os.environ["SERVER_ENDPOINT"]
    secure = os.environ.get("ENABLE_HTTPS", "1") == "1"
    data_dir = Path(os.environ["DATA_DIR"])
    vars(suite).update(
        _client=Minio(endpoint, os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"], secure=secure),
        _is_aws=".amazonaws.com" in endpoint,
        _test_file=str(data_dir / "datafile-1-MB"),
        _large_file=str(data_dir / "datafile-11-MB"),
    )


def main() -> int:
    suite_path, name = Path(sys.argv[1]), sys.argv[2]
    suite = load_suite(suite_path)
    set_up_like_main(suite)
    try:
        suite._call_test(getattr(suite, name))
    except suite.TestFailed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
