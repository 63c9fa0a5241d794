#!/usr/bin/env bash
# Fetch MinIO's functional S3 test suite (tests/functional/tests.py inside the minio sdist
# on PyPI) into .cache/minio-suite/, for tests/conformance/. The version and sha256 are
# pinned: a mismatching download is refused and deleted. Once cached, nothing is fetched
# again, so the test command works offline after its first run.
# Needs .venv (scripts/_venv.sh) for pip. Prints the path of the extracted tests.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

version="7.2.20"
sha256="95898b7a023fbbfde375985aa77e2cd6a0762268db79cf886f002a9ea8e68598"
cache=".cache/minio-suite"
sdist="$cache/minio-$version.tar.gz"
suite="$cache/minio-$version-tests.py"

verify() {
  echo "$sha256  $1" | sha256sum --check --status
}

mkdir -p "$cache"
if [ ! -f "$sdist" ] || ! verify "$sdist"; then
  rm -f "$sdist"
  download="$(mktemp -d "$cache/download.XXXXXX")"
  trap 'rm -rf "$download"' EXIT
  .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: \
    "minio==$version" -d "$download"
  if ! verify "$download/minio-$version.tar.gz"; then
    echo "fetch_minio_suite: minio-$version.tar.gz does not have sha256 $sha256; refused" >&2
    exit 1
  fi
  mv "$download/minio-$version.tar.gz" "$sdist"
fi
if [ ! -f "$suite" ] || [ "$suite" -ot "$sdist" ]; then
  tar -xzf "$sdist" -O "minio-$version/tests/functional/tests.py" >"$suite.tmp"
  mv "$suite.tmp" "$suite"
fi
echo "$repo/$suite"
