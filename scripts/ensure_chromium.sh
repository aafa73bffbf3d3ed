#!/usr/bin/env bash
# Make sure Debian's chromium exists at /usr/bin/chromium, for the console's browser tests
# (tests/test_console_browser.py drives it headless with Playwright for Python; Playwright's own
# browser downloads are never used). Idempotent. When it is missing and we are root with apt-get,
# install Debian's `chromium` package. Never fails: when installation is impossible it says the
# browser tests will be skipped and exits 0.
set -uo pipefail

skip() {
    echo "ensure_chromium: $1; the console's browser tests will be skipped" >&2
    exit 0
}

[ -x /usr/bin/chromium ] && exit 0
[ "$(id -u)" -eq 0 ] || skip "/usr/bin/chromium missing and not root"
command -v apt-get >/dev/null 2>&1 || skip "/usr/bin/chromium missing and no apt-get"

export DEBIAN_FRONTEND=noninteractive
echo "ensure_chromium: installing chromium (apt-get)" >&2
apt-get update -qq >/dev/null || skip "apt-get update failed"
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold chromium >/dev/null ||
    skip "apt-get install chromium failed"
[ -x /usr/bin/chromium ] || skip "chromium installed but /usr/bin/chromium not found"
exit 0
