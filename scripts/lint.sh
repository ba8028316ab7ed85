#!/usr/bin/env bash
# Formatting (clang-format) and static checks (clang-tidy) over the project's own C++.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'src/*.cc' 'src/*.h' 'fuzz/*.cc' 'bench/*.cc' | sort -u)
[ ${#files[@]} -gt 0 ] || { echo "lint: no files"; exit 1; }
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "lint: $f is not clang-formatted (run: clang-format -i $f)"
    bad=1
  fi
done
[ $bad -eq 0 ] || exit 1
echo "lint: clang-format ok (${#files[@]} files)"
# clang-tidy on the sources of the build (tests and the Beast unit are skipped: slow, and
# gtest/Beast macros trip checks that are not about our code).
mapfile -t tidy < <(printf '%s\n' "${files[@]}" | grep -E '^src/.*\.cc$' | grep -v '_test\.cc$' | grep -v 'beast_server\.cc$')
run-clang-tidy -quiet -p "$build" -j "$(nproc)" "${tidy[@]}" >/tmp/meterd-tidy.log 2>&1 || {
  grep -E "warning:|error:" /tmp/meterd-tidy.log | head -50
  echo "lint: clang-tidy failed (full log: /tmp/meterd-tidy.log)"
  exit 1
}
echo "lint: clang-tidy ok (${#tidy[@]} files)"
