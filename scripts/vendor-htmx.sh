#!/usr/bin/env bash
# vendor-htmx.sh fetches htmx and its server-sent-events extension from the npm registry, checks
# the tarball against the pinned integrity and copies the built files into console/static, where
# the console embeds them. Run it to update; the result is committed, so builds never fetch.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.0.1
INTEGRITY="sha512-oF7JgXhDW9UXCy/k1ZYFUQgzu/rm19ORWPSPNL91vPluB2PB9+MV55tyQdH/w7o2EAbTYUG5SDW1R60mdkdqGg=="

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$VERSION" >/dev/null)
tgz="$tmp/htmx.org-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "vendor-htmx: integrity mismatch: got $got, want $INTEGRITY" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/dist/htmx.min.js package/dist/ext/hx-sse.min.js package/LICENSE
cp "$tmp/package/dist/htmx.min.js" "$tmp/package/dist/ext/hx-sse.min.js" console/static/
cp "$tmp/package/LICENSE" console/static/htmx.LICENSE
{
	echo "htmx.org $VERSION (npm), $INTEGRITY"
	echo "  htmx.min.js    sha384-$(openssl dgst -sha384 -binary console/static/htmx.min.js | base64 -w0)"
	echo "  hx-sse.min.js  sha384-$(openssl dgst -sha384 -binary console/static/hx-sse.min.js | base64 -w0)"
	echo "Fetched and checked by scripts/vendor-htmx.sh; the console serves these files with"
	echo "subresource integrity computed at start."
} >console/static/VENDOR
echo "vendored htmx.org $VERSION into console/static" >&2
