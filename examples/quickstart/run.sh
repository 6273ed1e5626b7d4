#!/usr/bin/env bash
# The quickstart: builds retl, then plans and runs the `contacts` sync twice.
# The second run has nothing to do: the destination already matches the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

echo "==> building retl (the first build takes a few minutes)"
cargo build --quiet --manifest-path "$root/Cargo.toml" -p retl-cli
retl="$root/target/debug/retl"

cd "$here"
rm -rf .retl app.db   # start from scratch every time

echo
echo "==> retl validate"
"$retl" validate
echo
echo "==> retl preview contacts"
"$retl" preview contacts
echo
echo "==> retl plan contacts   (dry run: shows what would change)"
"$retl" plan contacts
echo
echo "==> retl run contacts    (applies the plan)"
"$retl" run contacts
echo
echo "==> retl run contacts    (again: nothing to do)"
"$retl" run contacts
echo
echo "==> retl runs"
"$retl" runs
echo
echo "The app database is examples/quickstart/app.db (table contacts)."
