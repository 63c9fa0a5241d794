# Sourced by scripts/test: the system packages and npm modules the tests drive for real
# (PostgreSQL, Chromium, client tools). Each is installed only where it is missing, so a
# machine that has them (or a second run) installs nothing and needs no network.
# Installing needs root (or passwordless sudo); without it the tests that need the
# program skip with a loud reason naming it.

# apt_packages_for COMMAND PACKAGE...: install PACKAGEs with apt-get unless COMMAND is
# already found (on PATH, or as an absolute path).
apt_packages_for() {
  local probe="$1"; shift
  if command -v "$probe" >/dev/null 2>&1 || [ -x "$probe" ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "!! cannot install $* (not root, no sudo): tests that need $probe will skip" >&2
      return 0
    fi
  fi
  echo "== apt-get install $*"
  if [ -z "${_RELAY_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq >/dev/null || true
    _RELAY_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null || echo "!! apt-get install $* failed: tests that need $probe will skip" >&2
}

# npm_modules_in DIR MODULE@VERSION...: install pinned npm modules into DIR (under .cache)
# unless each is already there.
npm_modules_in() {
  local dir="$1"; shift
  mkdir -p "$dir"
  local missing=()
  for spec in "$@"; do
    local name="${spec%@*}"
    [ -d "$dir/node_modules/$name" ] || missing+=("$spec")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if command -v npm >/dev/null 2>&1; then
      echo "== npm install ${missing[*]}"
      (cd "$dir" && npm install --silent --no-audit --no-fund "${missing[@]}" >/dev/null) \
        || echo "!! npm install ${missing[*]} failed: tests that need them will skip" >&2
    else
      echo "!! npm not found: tests that need ${missing[*]} will skip" >&2
    fi
  fi
}

# What the suite drives.
apt_packages_for /usr/lib/postgresql/15/bin/initdb postgresql
# The browser test (tests/e2e/test_e2e_browser.py): Debian's Chromium, driven by
# playwright-core (which never downloads a browser of its own).
apt_packages_for /usr/bin/chromium chromium
npm_modules_in .cache/browser playwright-core@1.57.0
# Virtual-hosted clients resolve BUCKET.<domain> through a network namespace's own hosts
# file (tests/e2e/netns.py); the AWS SDK for JavaScript v3 is one of those clients.
apt_packages_for ip iproute2
npm_modules_in .cache/aws-sdk-js @aws-sdk/client-s3@3.1175.0 @aws-sdk/s3-request-presigner@3.1169.0
