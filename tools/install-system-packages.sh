#!/usr/bin/env bash
# Installs the Debian packages the offline stack and the browser test need, when missing.
#   node      Node.js and npm, for Azurite
#   chromium  Debian's Chromium, driven by Playwright in the browser test
# Without root (a person's laptop) it only says what to install.
set -euo pipefail

need=()
for what in "$@"; do
  case "$what" in
    node)     command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm) ;;
    chromium) [ -x /usr/bin/chromium ] || need+=(chromium) ;;
    *) echo "install-system-packages: unknown component '$what'" >&2; exit 2 ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "azml_nb: missing ${need[*]}; install them with your package manager (Debian/Ubuntu: sudo apt-get install ${need[*]})." >&2
  # CI must have them; elsewhere the tests that need them skip with this same advice.
  [ "${CI:-}" = "true" ] && exit 1 || exit 0
fi
echo "azml_nb: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
