#!/usr/bin/env bash
# The browser of the dashboard's tests (tests/e2e/test_browser.py): Debian's
# headless-capable Chromium and its WebDriver, chromedriver. Only the test
# command installs them; the demo does not need them.
set -euo pipefail
source "$(dirname "$0")/lib/apt.sh"
install_packages chromium chromium-driver fonts-dejavu-core
