#!/usr/bin/env bash
# cargo deny check (advisories, licences, bans, sources; deny.toml) with the RustSec
# advisory database from GitHub when it is reachable, else from the dated snapshot in
# tests/deny/ (CI reaches only the package registries). The database used, and its date, is
# printed first. cargo-deny itself is built once into target/tools.
#
#   scripts/deny.sh                    check
#   scripts/deny.sh --update-snapshot  refresh tests/deny/advisory-db.tar.gz (needs GitHub)
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
URL=https://github.com/rustsec/advisory-db
# Where cargo-deny looks for the database of $URL under deny.toml's db-path: the last path
# segment and a hash of the URL (cargo-deny's url_to_db_path).
DB=target/advisory-db/advisory-db-3157b0e258782691
SNAPSHOT=tests/deny/advisory-db.tar.gz

fresh_clone() {
  local dir=$1
  rm -rf "$dir.new"
  timeout 60 git clone --quiet --depth 1 "$URL" "$dir.new" 2>/dev/null || return 1
  rm -rf "$dir" && mv "$dir.new" "$dir"
}

if [ "${1:-}" = "--update-snapshot" ]; then
  tmp=$(mktemp -d)
  fresh_clone "$tmp/db" || { echo "deny: cannot clone $URL" >&2; exit 1; }
  git -C "$tmp/db" archive --format=tar HEAD crates LICENSE.txt | gzip -9n > "$SNAPSHOT"
  printf 'commit %s\ndate %s\n' "$(git -C "$tmp/db" log -1 --format=%H)" \
    "$(git -C "$tmp/db" log -1 --format=%cI)" > tests/deny/advisory-db.snapshot
  rm -rf "$tmp"
  cat tests/deny/advisory-db.snapshot
  exit 0
fi

if [ ! -x target/tools/bin/cargo-deny ]; then
  # cargo-deny's own release profile is fat LTO in one codegen unit: minutes of one core for
  # a speed that checking one lock file does not need. Built unoptimised instead (the check
  # takes 2 s here, built in a minute of CPU).
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    cargo install --quiet --locked --root target/tools cargo-deny --version "$DENY_VERSION"
fi

mkdir -p "$(dirname "$DB")"
if fresh_clone "$DB"; then
  echo "deny: advisory database: fresh clone of $URL, $(git -C "$DB" log -1 --format=%cI)"
else
  # The snapshot as a one-commit git repository dated like the snapshot (cargo-deny reads
  # the database's age from git).
  rm -rf "$DB" && mkdir -p "$DB"
  tar -xzf "$SNAPSHOT" -C "$DB"
  date=$(sed -n 's/^date //p' tests/deny/advisory-db.snapshot)
  git -C "$DB" init --quiet
  git -C "$DB" add -A
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git -C "$DB" -c user.name=smplcast \
    -c user.email=smplcast@localhost commit --quiet -m "advisory-db snapshot"
  echo "deny: advisory database: snapshot $(tr '\n' ' ' < tests/deny/advisory-db.snapshot)" \
    "($URL not reachable)"
fi
# cargo deny reads the metadata of every package in Cargo.lock, the Windows-only ones too,
# which a Linux build never downloads: fetch them first, with the network allowed (the check
# itself then runs offline against the database chosen above).
cargo fetch --locked --quiet
target/tools/bin/cargo-deny --log-level warn --locked --offline check \
  advisories licenses bans sources
