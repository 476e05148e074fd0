#!/usr/bin/env bash
# Install the system programs the tests drive (Debian packages): Prometheus Alertmanager, Chromium,
# Prometheus (with promtool), kubectl, and an emoji font (so the browser's screenshots show the cards'
# status icons, not empty boxes).
# Idempotent and quiet: does nothing when both binaries are already on PATH. Without root or sudo it
# only says what to install: the tests that need a missing program then fail with that message.
set -euo pipefail

missing=()
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
[ -f "$EMOJI_FONT" ] || missing+=(fonts-noto-color-emoji)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo -n"
  else
    # Not fatal here: the tests that need a missing program fail and say so (or are opted out).
    echo "install-system-deps: missing ${missing[*]} and not root; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "  (or opt out of their tests: REMEDIATE_TEST_ALERTMANAGER=off REMEDIATE_TEST_BROWSER=off REMEDIATE_TEST_KUBECTL=off)" >&2
    exit 0
  fi
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A stale package list can name versions the mirror no longer has: update once, quietly.
$sudo_cmd apt-get update -qq >/dev/null
$sudo_cmd apt-get install -y -qq --no-install-recommends $(printf "%s\n" "${missing[@]}" | sort -u) >/dev/null
for bin in prometheus-alertmanager chromium prometheus promtool kubectl; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-system-deps: $bin still missing after install" >&2; exit 1; }
done
[ -f "$EMOJI_FONT" ] || { echo "install-system-deps: $EMOJI_FONT still missing after install" >&2; exit 1; }
