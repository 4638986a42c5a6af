#!/usr/bin/env bash
# Validates the published SOAP contract and its golden fixtures with xmllint.
#
#   1. every XSD in wsdl/ and tests/schema/ compiles;
#   2. every WSDL in wsdl/ is well-formed;
#   3. every fixture under tests/data/ (except tests/data/invalid/) validates,
#      SOAP envelope included, against tests/schema/all-partner.xsd
#      (tests/data/callback/: all-callback.xsd);
#   4. every fixture in tests/data/invalid/ is rejected, with the error named on
#      its "expect:" comment line (invalid/callback-*.xml: all-callback.xsd).
#
# Needs only bash, coreutils, findutils, grep, sed and xmllint (Debian:
# libxml2-utils). Never touches the network. Exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 2

if ! command -v xmllint >/dev/null 2>&1; then
  echo "xmllint.sh: xmllint not found (apt-get install libxml2-utils)" >&2
  exit 2
fi

PARTNER=tests/schema/all-partner.xsd
CALLBACK=tests/schema/all-callback.xsd
schemas=0 wsdls=0 valid=0 invalid=0 failures=0

fail() {
  failures=$((failures + 1))
  echo "FAIL: $1" >&2
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/    /' >&2; fi
}

# 1. Schemas compile. A root element without declaration gives exit code 3
#    (validation error); a schema that does not compile gives 5.
for xsd in wsdl/*.xsd tests/schema/*.xsd; do
  out=$(echo '<probe/>' | xmllint --noout --nonet --schema "$xsd" - 2>&1)
  rc=$?
  if [ "$rc" -eq 3 ] && ! grep -q 'parser error\|failed to compile\|WXS schema' <<<"$out"; then
    schemas=$((schemas + 1))
  else
    fail "schema does not compile: $xsd (exit $rc)" "$out"
  fi
done

# 2. WSDLs are well-formed.
for wsdl in wsdl/*.wsdl; do
  if out=$(xmllint --noout --nonet "$wsdl" 2>&1); then
    wsdls=$((wsdls + 1))
  else
    fail "WSDL not well-formed: $wsdl" "$out"
  fi
done

# 3. Golden fixtures validate.
while IFS= read -r f; do
  case "$f" in
    tests/data/callback/*) schema=$CALLBACK ;;
    *) schema=$PARTNER ;;
  esac
  if out=$(xmllint --noout --nonet --schema "$schema" "$f" 2>&1); then
    valid=$((valid + 1))
  else
    fail "valid fixture rejected: $f" "$out"
  fi
done < <(find tests/data -name '*.xml' -not -path 'tests/data/invalid/*' | LC_ALL=C sort)

# 4. Negative fixtures are rejected for the expected reason.
while IFS= read -r f; do
  case "$f" in
    tests/data/invalid/callback-*) schema=$CALLBACK ;;
    *) schema=$PARTNER ;;
  esac
  expect=$(sed -n 's/^ *expect: \(.*\) -->$/\1/p' "$f" | head -n 1)
  if [ -z "$expect" ]; then
    fail "invalid fixture has no 'expect:' comment: $f"
    continue
  fi
  out=$(xmllint --noout --nonet --schema "$schema" "$f" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ]; then
    fail "invalid fixture accepted: $f"
  elif [ "$rc" -ne 3 ]; then
    fail "invalid fixture not well-formed or schema broken: $f (exit $rc)" "$out"
  elif ! grep -qF -- "$expect" <<<"$out"; then
    fail "invalid fixture rejected for another reason: $f (expected: $expect)" "$out"
  else
    invalid=$((invalid + 1))
  fi
done < <(find tests/data/invalid -name '*.xml' 2>/dev/null | LC_ALL=C sort)

if [ "$valid" -eq 0 ] || [ "$invalid" -eq 0 ]; then
  fail "no fixtures found under tests/data"
fi

echo "xmllint.sh: $schemas schemas compiled, $wsdls WSDLs well-formed, $valid valid fixtures passed, $invalid invalid fixtures rejected, $failures failures"
[ "$failures" -eq 0 ]
