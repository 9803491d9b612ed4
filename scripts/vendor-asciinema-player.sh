#!/usr/bin/env bash
# vendor-asciinema-player.sh fetches asciinema-player (the web player of asciicast recordings)
# from the npm registry, checks the tarball against the pinned integrity and copies its built,
# monolithic bundle (the player with its terminal emulator compiled to WebAssembly and inlined)
# and its stylesheet into console/static, where the console embeds them. Run it to update; the
# result is committed, so builds never fetch.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.17.0
INTEGRITY="sha512-JbjNJmA2TLIeYNaOEja+kVSzXadKoqpIzVVmfBGNj2DmdtE/vExBCnkE8NYEcpaQcDvUYg8Ltt0urT80frACmw=="

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "asciinema-player@$VERSION" >/dev/null)
tgz="$tmp/asciinema-player-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "vendor-asciinema-player: integrity mismatch: got $got, want $INTEGRITY" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/dist/bundle/asciinema-player.min.js package/dist/bundle/asciinema-player.css package/LICENSE
cp "$tmp/package/dist/bundle/asciinema-player.min.js" "$tmp/package/dist/bundle/asciinema-player.css" console/static/
cp "$tmp/package/LICENSE" console/static/asciinema-player.LICENSE
{
	echo "asciinema-player $VERSION (npm), $INTEGRITY"
	echo "  asciinema-player.min.js  sha384-$(openssl dgst -sha384 -binary console/static/asciinema-player.min.js | base64 -w0)"
	echo "  asciinema-player.css     sha384-$(openssl dgst -sha384 -binary console/static/asciinema-player.css | base64 -w0)"
	echo "Fetched and checked by scripts/vendor-asciinema-player.sh; the console serves these files with"
	echo "subresource integrity computed at start, on the recording page only."
} >console/static/asciinema-player.VENDOR
echo "vendored asciinema-player $VERSION into console/static" >&2
