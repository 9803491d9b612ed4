#!/usr/bin/env bash
# install-deps.sh installs the system packages Gatehouse's build and tests need, when missing:
#   go (>= 1.26), git, make, bash, flock  - building
#   npm                                   - fetching the ClickHouse engine (scripts/testbed.sh)
#   chromium, chromium-driver             - the console's browser tests (chromedp drives Chromium)
# It uses apt-get on Debian and Ubuntu; elsewhere it names what is missing.
set -euo pipefail

need=()
command -v npm >/dev/null || need+=(npm)
command -v flock >/dev/null || need+=(util-linux)
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
command -v chromium >/dev/null || need+=(chromium chromium-driver)

if ! command -v go >/dev/null; then
	echo "install-deps: Go 1.26 or newer is required: https://go.dev/doc/install" >&2
	exit 1
fi

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "install-deps: please install: ${need[*]}" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "==> apt-get install ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
