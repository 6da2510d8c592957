#!/usr/bin/env bash
# Installs what the Ruby gem (ruby/) needs to build and test, from Debian bookworm's packages, as
# root: Ruby 3.1 with its headers, Rails 6.1, Puma, Rack, Bundler, minitest and stackprof (a peer
# measured by bench/run). Idempotent and quiet: packages already present are not reinstalled.
# Under CI=true a package that cannot be installed fails the script; otherwise it says so and
# the Ruby tests fail or skip later.
set -uo pipefail

PKGS=(ruby ruby-dev ruby-rails puma ruby-rack bundler ruby-minitest ruby-stackprof)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup_ruby: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  exit 0
fi
echo "setup_ruby: could not install ${missing[*]}; the Ruby tests (tests/ruby) will not run" >&2
[ "${CI:-}" = "true" ] && exit 1
exit 0
