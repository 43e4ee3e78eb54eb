#!/bin/sh
# Regenerates the console's screenshots in this directory (shown in the README) from the
# browser test that checks the console: it signs an administrator in, opens the pages at
# 1280x800 and at a phone's 390x844, creates an application through the form, lists the
# administrator's tokens, asks the tools (who may call a path, why a token is refused) and
# tests a connection alias in front of a second Gatehouse. Needs
# Debian's chromium and `npm ci` in tests/browser.
set -eu
docs=$(cd "$(dirname "$0")" && pwd)
cd "$docs/.."
GATEHOUSE_SCREENSHOTS="$docs" cargo test -p gatehouse --test it -- \
    --exact browser::the_console_works_in_a_real_browser::sqlite
ls "$docs"/console-*.png
