#!/usr/bin/env bash
# Installs Debian's chromium for the replay page's browser test
# (tests/test_replay.py drives it with Playwright; nothing is downloaded by
# Playwright itself). Does nothing when chromium is already on PATH; as a
# non-root user or without apt-get it only says why the test will be skipped.
# Never fails the caller: the test skips itself without a browser.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no chromium and no root apt-get; the replay browser test will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1; then
    echo "install_browser.sh: apt-get could not install chromium; the replay browser test will be skipped" >&2
fi
exit 0
