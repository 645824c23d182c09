#!/usr/bin/env bash
# Refreshes viewer/vendor/ from the npm registry: the pinned versions below, checked against
# their registry integrity hashes. The page loads nothing from a CDN at run time; these files
# are compiled into the binary (src/view.rs).
#   viewer/vendor.sh           (needs npm and the registry; not part of the test command)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
declare -A integrity=(
  [three@0.187.0]="sha512-Qiu7R+Cmh8CstZsY1uJOSWnVlfo7ZtNLV7mF8Jltk3LB3AtDu9cRZlcnRKkAk8Y4z6KKw35z7Y7Urd7jWY8etA=="
  [mqtt@5.16.0]="sha512-G0VsEtuJz5sJUgZJaaADMVfW7SIFPzkIuHR+d6rk+tBeSwdCfd9BaIRycRfd2AbyFDEmLlFM+SDQeti/+IbOnw=="
  [cbor-x@1.6.9]="sha512-TCT9XHLb4iPGQ99fpQjcTRncbus6cXHvSD/RY+bPrDACBCJKiQLmAM6r7/BgQcI5i+8h4gwp4vjfb6S6T8bPGw=="
)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
for pkg in "${!integrity[@]}"; do
  tgz=$(npm pack --silent "$pkg")
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [ "$got" = "${integrity[$pkg]}" ] || { echo "$pkg: integrity $got, expected ${integrity[$pkg]}" >&2; exit 1; }
  mkdir "${pkg%@*}" && tar xzf "$tgz" -C "${pkg%@*}"
done
v="$here/vendor"
cp three/package/build/three.module.js three/package/build/three.core.js "$v/"
cp three/package/examples/jsm/controls/OrbitControls.js "$v/"
cp three/package/LICENSE "$v/LICENSE.three"
cp mqtt/package/dist/mqtt.esm.js "$v/"
cp mqtt/package/LICENSE.md "$v/LICENSE.mqtt"
cp cbor-x/package/dist/index.min.js "$v/cbor-x.min.js"
cp cbor-x/package/LICENSE "$v/LICENSE.cbor-x"
echo "viewer/vendor: three 0.187.0, mqtt 5.16.0, cbor-x 1.6.9 (integrity checked)"
