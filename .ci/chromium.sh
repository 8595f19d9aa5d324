#!/usr/bin/env bash
# Install Debian's chromium and its chromedriver for the leaderboard page's browser tests
# (tests/leaderboard/test_web.py). Idempotent: does nothing when both are already on PATH.
# Uses the distribution's packages rather than Selenium Manager, so the tests never download a
# browser. Needs root (or sudo). On Ubuntu, "chromium" is a snap wrapper; use a Debian image.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver already installed: $(chromedriver --version)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: installing chromium needs root; rerun as root or install sudo" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
echo "installed: $(chromedriver --version)"
