#!/usr/bin/env bash
# Check systemd/autoheal.service: `systemd-analyze verify` must be clean and
# `systemd-analyze security --offline=yes` must rate it at most MAX_EXPOSURE
# (default 2.5; 0 = safest, 10 = unsafe).
#
# verify insists that ExecStart's binary exists, so it runs on a temporary copy
# of the unit whose ExecStart points at the autoheal actually installed here:
# $AUTOHEAL_BIN, else `command -v autoheal`, else the repository's .venv.
#
# Usage: scripts/check_systemd_unit.sh [UNIT_FILE]
# Exit: 0 ok (or systemd-analyze missing: a note, nothing checked),
#       1 verify reported problems or the exposure is too high, 2 usage error.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
unit="${1:-$repo/systemd/autoheal.service}"
max_exposure="${MAX_EXPOSURE:-2.5}"

if [[ ! -f "$unit" ]]; then
    echo "check_systemd_unit: no such unit file: $unit" >&2
    exit 2
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check_systemd_unit: NOTE: systemd-analyze is not installed; unit not checked."
    exit 0
fi

bin="${AUTOHEAL_BIN:-$(command -v autoheal || true)}"
if [[ -z "$bin" && -x "$repo/.venv/bin/autoheal" ]]; then
    bin="$repo/.venv/bin/autoheal"
fi
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "check_systemd_unit: cannot find an installed autoheal (set AUTOHEAL_BIN)" >&2
    exit 2
fi

workdir="$(mktemp -d)"
trap 'rm -rf -- "$workdir"' EXIT
# Same unit name, so that messages and the security report name autoheal.service.
copy="$workdir/$(basename "$unit")"
sed -E "s|^(ExecStart=[-@:+!]*)[^ ]+|\\1$bin|" "$unit" >"$copy"

status=0

echo "== systemd-analyze verify $(basename "$unit") (ExecStart -> $bin)"
# verify exits 0 on many problems (unknown keys, bad values are "ignoring" warnings),
# so any line about our unit counts as a failure, not only the exit code.
verify_rc=0
verify_out="$(systemd-analyze verify "$copy" 2>&1)" || verify_rc=$?
own_lines="$(grep -F -e "$copy" -e "$(basename "$unit")" <<<"$verify_out" || true)"
if [[ -n "$verify_out" ]]; then
    echo "$verify_out"
fi
if [[ $verify_rc -ne 0 || -n "$own_lines" ]]; then
    echo "verify: FAILED (exit $verify_rc)"
    status=1
else
    echo "verify: clean"
fi

echo "== systemd-analyze security --offline=yes $(basename "$unit")"
version="$(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
if [[ "$version" =~ ^[0-9]+$ && "$version" -lt 250 ]]; then
    echo "check_systemd_unit: NOTE: systemd $version has no security --offline; exposure not checked."
    exit "$status"
fi
security_out="$(systemd-analyze security --offline=yes --no-pager "$copy" 2>&1 || true)"
overall="$(grep -F "Overall exposure level" <<<"$security_out" || true)"
exposure="$(sed -nE 's/.*Overall exposure level for [^:]+: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$overall")"
if [[ -z "$exposure" ]]; then
    echo "$security_out"
    echo "security: FAILED (no overall exposure level in the output)"
    exit 1
fi
# The full table only when it matters; the overall line always.
if [[ -n "${VERBOSE:-}" ]]; then
    echo "$security_out"
fi
echo "$overall"
if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    echo "security: FAILED (exposure $exposure > $max_exposure)"
    grep -E '^✗' <<<"$security_out" || true
    status=1
else
    echo "security: ok (exposure $exposure <= $max_exposure)"
fi
exit "$status"
