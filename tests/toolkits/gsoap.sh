#!/usr/bin/env bash
# gSOAP (Debian packages `gsoap` + `libgsoap-dev`, 2.8.x) conformance check.
#
# Usage: tests/toolkits/gsoap.sh WSDL
#
#   wsdl2h -o svc.h WSDL
#   soapcpp2 -j -C -x -I<gsoap import dir> svc.h
#   g++ -O0 -c soapC.cpp soap*Proxy.cpp  + a generated driver, linked with -lgsoap++
# The driver constructs every generated client proxy, sets the SOAP header through the
# generated soap_header(...) setter and serialises one request of the first operation
# into a string (no network); the script asserts the header element (PartnerAuth /
# CallbackAuth) is in SOAP-ENV:Header with mustUnderstand set, and prints the envelope
# namespace each proxy uses. A WSDL that binds no soap:header on any input (the enrollment
# contract) must give the opposite: no input header part in svc.h, no soap_header(...)
# setter with parameters, and no header entry in the serialised request. Any warning printed by wsdl2h, soapcpp2 or g++ is
# reprinted as "TOOLKIT-WARNING [gsoap]: ..."; any error exits non-zero.
# With PG_LIVE_ENDPOINT set (tests/toolkits.rs does) and a WSDL with the PartnerAuth header, a
# second driver calls GetAccount through the generated proxy against that gateway and must find
# the typed detail gSOAP deserialised into the fault (SOAP_ENV__Detail): a wrong key ->
# AccessDeniedFault authentication-failed, an unknown account -> NotFoundFault account, the
# throttled partner -> ThrottledFault RetryAfterSeconds. gSOAP reported a SOAP 1.2 fault sent
# with 403/404/429 as `HTTP Error` without it. Prints "LIVE-OK soap11|soap12 <proxy> ..." with
# the SOAP version the proxy sent.
set -euo pipefail
PG_TOOL=gsoap
# shellcheck source=tests/toolkits/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 WSDL" >&2; exit 2; }
pg_need wsdl2h soapcpp2 g++ xmllint
GSOAP_IMPORT="${GSOAP_IMPORT:-/usr/share/gsoap/import}"
[[ -f "$GSOAP_IMPORT/soap12.h" ]] || pg_fail "gSOAP import dir $GSOAP_IMPORT missing: gsoap not installed: run \`sudo .ci/setup\`"
[[ -f /usr/include/stdsoap2.h ]] || pg_fail "libgsoap-dev (stdsoap2.h) not installed: run \`sudo .ci/setup\`"
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists gsoap++; then
    read -r -a GSOAP_CFLAGS <<<"$(pkg-config --cflags gsoap++)"
    read -r -a GSOAP_LIBS <<<"$(pkg-config --libs gsoap++)"
else  # flags Debian's libgsoap++ is built with (gsoap++.pc)
    GSOAP_CFLAGS=(-DWITH_IPV6 -DWITH_DOM)
    GSOAP_LIBS=(-lgsoap++)
fi

SRC_WSDL="$1"
pg_stage "$1"
SOAP11_ENV=http://schemas.xmlsoap.org/soap/envelope/
soap12_bindings=$(xmllint --xpath 'count(//*[local-name()="binding" and namespace-uri()="http://schemas.xmlsoap.org/wsdl/soap12/"])' "$PG_WSDL")
mapfile -t ops < <(pg_operations "$PG_WSDL")
mapfile -t headers < <(pg_headers "$PG_WSDL")
(( ${#ops[@]} > 0 )) || pg_fail "no portType operations found in $1"
# no header bound anywhere (the anonymous enrollment contract) is allowed: then the checks
# below require that gSOAP maps none; bound on any input means required on every operation
cd "$PG_STAGE"

# run CMD..., show its output indented, reprint warnings; fail on non-zero exit or errors
step() {
    local name="$1" log rc=0; shift
    log="$PG_STAGE/$name.log"
    pg_info "${*}"
    "$@" >"$log" 2>&1 || rc=$?
    # drop the licence banner and blank lines, keep the rest
    grep -vE '^\*\*  |^[[:space:]]*$' "$log" | sed 's/^/    /' || true
    grep -iE 'warning' "$log" | sed -E "s|$PG_STAGE/||g; s/^[[:space:]]*/TOOLKIT-WARNING [$PG_TOOL]: $name: /" || true
    if (( rc != 0 )) || grep -qE '^(\*\*ERROR|Error|ERROR)|[^a-z]error:|\*\*ERROR\*\*' "$log"; then
        pg_fail "$name failed (exit $rc) on $SRC_WSDL"
    fi
}

step wsdl2h wsdl2h -o svc.h "$(basename "$PG_WSDL")"
[[ -s svc.h ]] || pg_fail "wsdl2h produced no svc.h"
# every operation of every (collected) binding must carry the header part
nmeth=$(grep -cE '^//gsoap [A-Za-z0-9_]+ +service method-style:' svc.h || true)
for h in "${headers[@]}"; do
    nh=$(grep -cE "^//gsoap [A-Za-z0-9_]+ +service method-input-header-part:[[:space:]]+[A-Za-z0-9_]+ [A-Za-z0-9_]+__${h}\$" svc.h || true)
    [[ "$nh" == "$nmeth" ]] || pg_fail "svc.h: header $h is an input header part of $nh of $nmeth operations (a binding operation lacks its soap:header?)"
done
if (( ${#headers[@]} == 0 )); then
    nh=$(grep -cE '^//gsoap [A-Za-z0-9_]+ +service method-input-header-part:' svc.h || true)
    [[ "$nh" == 0 ]] || pg_fail "svc.h: the WSDL binds no soap:header, but wsdl2h made $nh input header part(s)"
fi
pg_info "svc.h: $nmeth binding operations, each with input header(s) ${headers[*]:-none}"
step soapcpp2 soapcpp2 -j -C -x "-I$GSOAP_IMPORT" svc.h
grep -q 'Compilation successful' soapcpp2.log || pg_fail "soapcpp2 did not report success"

shopt -s nullglob
proxies=(soap*Proxy.h)
nsmaps=(*.nsmap)
shopt -u nullglob
(( ${#proxies[@]} > 0 )) || pg_fail "soapcpp2 generated no client proxy"
(( ${#nsmaps[@]} > 0 )) || pg_fail "soapcpp2 generated no .nsmap"
for op in "${ops[@]}"; do
    grep -qE "virtual int send_${op}\(" "${proxies[@]}" || pg_fail "no proxy method for operation $op"
done
pg_info "proxies: ${proxies[*]}; all ${#ops[@]} operations present"

# --- generated driver -------------------------------------------------------------
{
    echo '#include <iostream>'
    echo '#include <sstream>'
    for p in "${proxies[@]}"; do echo "#include \"$p\""; done
    echo "#include \"${nsmaps[0]}\""
    echo 'int main() {'
    echo '  int failures = 0;'
    for p in "${proxies[@]}"; do
        cls=$(sed -nE '/^[[:space:]]*class SOAP_CMAC /{s/^[[:space:]]*class SOAP_CMAC ([A-Za-z0-9_]+).*/\1/p;q}' "$p")
        [[ -n "$cls" ]] || pg_fail "$p: no proxy class found"
        # virtual void soap_header(_ns3__PartnerAuth *ns3__PartnerAuth, ...);
        hparams=$(grep -m1 -E 'virtual void soap_header\(.+\);' "$p" | sed -E 's/.*soap_header\((.*)\);.*/\1/' || true)
        if (( ${#headers[@]} == 0 )); then
            [[ -z "$hparams" ]] || pg_fail "$p: the WSDL binds no soap:header, but the proxy has a soap_header($hparams) setter"
            hset=""
        else
            [[ -n "$hparams" ]] || pg_fail "$p: no soap_header(...) setter: the WSDL's soap:header was not mapped"
            hargs=$(tr ',' '\n' <<<"$hparams" | sed -E 's/^[[:space:]]*([A-Za-z0-9_:]+)[[:space:]]*\*.*/soap_new_\1(p.soap)/' | paste -sd, -)
            hset="p.soap_header($hargs);"
        fi
        # virtual int send_OP(const char *soap_endpoint_url, const char *soap_action, T *arg);
        send=$(grep -E 'virtual int send_[A-Za-z0-9_]+\(const char \*soap_endpoint_url, const char \*soap_action, [A-Za-z0-9_:]+ \*[A-Za-z0-9_]+\);' -m1 "$p")
        [[ -n "$send" ]] || pg_fail "$p: no doc/literal send_<operation>(endpoint, action, T*) method"
        op=$(sed -E 's/.*virtual int (send_[A-Za-z0-9_]+)\(.*/\1/' <<<"$send")
        rtype=$(sed -E 's/.*soap_action, ([A-Za-z0-9_:]+) \*.*/\1/' <<<"$send")
        cat <<EOF
  {
    $cls p;
    std::ostringstream out;
    $hset
    p.soap->os = &out;   // serialise into a string instead of a socket
    int rc = p.$op("", NULL, soap_new_$rtype(p.soap));
    p.soap->os = NULL;
    std::cout << "PROXY $cls $op" << std::endl << out.str() << std::endl << "END" << std::endl;
    if (rc != SOAP_OK) { p.soap_stream_fault(std::cerr); failures++; }
    p.destroy();
  }
EOF
    done
    echo '  return failures;'
    echo '}'
} >driver.cpp

objs=()
for src in soapC.cpp soap*Proxy.cpp driver.cpp; do
    step "g++ ${src}" g++ -O0 -std=c++11 "${GSOAP_CFLAGS[@]}" -I. -I/usr/include -c "$src" -o "${src%.cpp}.o"
    objs+=("${src%.cpp}.o")
done
step "g++ link" g++ -o client "${objs[@]}" "${GSOAP_LIBS[@]}"
pg_info "built client binary ($(du -k client | cut -f1) KiB) from ${#proxies[@]} proxy class(es)"

# --- run the driver: header must be in every serialised request ----------------------
./client >envelopes.txt 2>client.err || { cat client.err >&2; pg_fail "driver failed to serialise a request"; }
awk '/^PROXY /{name=$2" "$3; next} /^END$/{next} /<.*Envelope/{print name"\t"$0}' envelopes.txt >envs.tsv
[[ $(wc -l <envs.tsv) == "${#proxies[@]}" ]] || { cat envelopes.txt; pg_fail "expected ${#proxies[@]} envelopes"; }
while IFS=$'\t' read -r name env; do
    hdr=$(sed -nE 's/.*<SOAP-ENV:Header>(.*)<\/SOAP-ENV:Header>.*/\1/p' <<<"$env")
    envns=$(sed -nE 's/.*xmlns:SOAP-ENV="([^"]*)".*/\1/p' <<<"$env")
    for h in "${headers[@]}"; do
        grep -qE "<([A-Za-z0-9_]+:)?$h[ >/]" <<<"$hdr" \
            || { echo "$env"; pg_fail "$name: header $h not in SOAP-ENV:Header"; }
        mu=$(grep -oE "<([A-Za-z0-9_]+:)?$h [^>]*mustUnderstand=\"[^\"]*\"" <<<"$hdr" | sed -E 's/.*mustUnderstand="([^"]*)"/\1/')
        pg_info "$name: envelope $envns, header $h mustUnderstand=\"${mu:-absent}\""
    done
    if (( ${#headers[@]} == 0 )); then
        [[ -z "$hdr" ]] || { echo "$env"; pg_fail "$name: the WSDL binds no soap:header, but the request has SOAP-ENV:Header content"; }
        pg_info "$name: envelope $envns, no header (none bound)"
    fi
    if [[ "$soap12_bindings" == 0 && "$envns" != "$SOAP11_ENV" ]]; then
        echo "$env"
        pg_fail "$name: WSDL has only SOAP 1.1 bindings but the gSOAP client sends $envns envelopes: wsdl2h emits '#import \"soap12.h\"' as soon as the SOAP 1.2 WSDL binding namespace (http://schemas.xmlsoap.org/wsdl/soap12/) is declared anywhere in the WSDL. Drop the unused xmlns:soap12 declaration from the SOAP 1.1-only view."
    fi
    if [[ "$soap12_bindings" != 0 && "$envns" != "$SOAP11_ENV" ]]; then
        pg_info "note: $name: WSDL has SOAP 1.2 bindings, so wsdl2h makes this client send SOAP 1.2 envelopes on every operation, including the SOAP 1.1 binding's (gSOAP partners should use the SOAP 1.1-only view)"
    fi
    if [[ -n "${PG_VERBOSE:-}" ]]; then echo "$env"; fi
done <envs.tsv
pg_info "OK $1"

# --- live calls through the generated proxy ------------------------------------------
if [[ -n "${PG_LIVE_ENDPOINT:-}" ]] && printf '%s\n' "${headers[@]}" | grep -qx PartnerAuth; then
    p="${proxies[0]}"
    cls=$(sed -nE '/^[[:space:]]*class SOAP_CMAC /{s/^[[:space:]]*class SOAP_CMAC ([A-Za-z0-9_]+).*/\1/p;q}' "$p")
    # virtual int GetAccount(const char *soap_endpoint_url, const char *soap_action, _ns3__GetAccount *..., _ns3__GetAccountResponse &...)
    decl=$(grep -m1 -E 'virtual int GetAccount\(const char \*soap_endpoint_url, const char \*soap_action, ' "$p")
    req=$(sed -E 's/.*soap_action, ([A-Za-z0-9_]+) \*.*/\1/' <<<"$decl")
    resp=$(sed -E 's/.*, ([A-Za-z0-9_]+) &[A-Za-z0-9_]+\).*/\1/' <<<"$decl")
    auth=$(grep -m1 -E 'virtual void soap_header\(' "$p" | sed -E 's/.*soap_header\(([A-Za-z0-9_]+) \*[A-Za-z0-9_]+\);.*/\1/')
    # the prefix gSOAP gave the common namespace: _<prefix>__AccessDeniedFault
    cmn=$(grep -m1 -oE '_[A-Za-z0-9]+__AccessDeniedFault \*' soapStub.h | sed -E 's/^_([A-Za-z0-9]+)__.*/\1/')
    [[ -n "$req" && -n "$resp" && -n "$auth" && -n "$cmn" && "$auth" == _*__PartnerAuth ]] \
        || pg_fail "$p: cannot read GetAccount ($req, $resp), the header type ($auth) or the fault details ($cmn)"
    cat >live.cpp <<CPP
#include <iostream>
#include <sstream>
#include <string>
#include "$p"
#include "${nsmaps[0]}"
// The typed fault a GetAccount call ends in ("Kind detail"), or what gSOAP reported instead.
static std::string call(const char *endpoint, const char *id, const std::string &key, int &version) {
  $cls p;
  $auth *auth = soap_new_$auth(p.soap);
  auth->PartnerId = id;
  auth->ApiKey = key;
  p.soap_header(auth);
  $req req;
  req.AccountNumber = "ACC-9999999999";
  $resp resp;
  int rc = p.GetAccount(endpoint, NULL, &req, resp);
  version = p.soap->version;
  std::string out;
  const SOAP_ENV__Fault *f = p.soap->fault;
  const SOAP_ENV__Detail *d = f ? (f->detail ? f->detail : f->SOAP_ENV__Detail) : NULL;
  if (rc == SOAP_OK) out = "no fault";
  else if (d && d->${cmn}__AccessDeniedFault)
    out = std::string("AccessDeniedFault ") + soap_${cmn}__AccessDeniedReason2s(p.soap, d->${cmn}__AccessDeniedFault->Reason);
  else if (d && d->${cmn}__NotFoundFault)
    out = std::string("NotFoundFault ") + soap_${cmn}__NotFoundEntity2s(p.soap, d->${cmn}__NotFoundFault->Entity);
  else if (d && d->${cmn}__ThrottledFault) {
    std::ostringstream s;
    s << "ThrottledFault " << d->${cmn}__ThrottledFault->RetryAfterSeconds;
    out = s.str();
  } else {
    std::ostringstream s;
    s << "no typed detail (error " << rc << "): ";
    p.soap_stream_fault(s);
    out = s.str();
  }
  p.destroy();
  return out;
}
static int expect(const std::string &what, const std::string &got, const std::string &want) {
  if (got == want) return 0;
  std::cerr << what << ": got " << got << ", expected " << want << std::endl;
  return 1;
}
int main() {
  const char *endpoint = getenv("PG_LIVE_ENDPOINT"), *id = getenv("PG_LIVE_PARTNER");
  std::string key = getenv("PG_LIVE_KEY");
  std::string wrong = key.substr(0, key.size() - 1) + (key[key.size() - 1] == 'x' ? "y" : "x");
  int version = 0, failures = 0;
  failures += expect("wrong key", call(endpoint, id, wrong, version), "AccessDeniedFault authentication-failed");
  failures += expect("unknown account", call(endpoint, id, key, version), "NotFoundFault account");
  std::string throttled;
  for (int n = 0; n < 5 && throttled.empty(); n++) {
    std::string got = call(endpoint, getenv("PG_LIVE_THROTTLED_PARTNER"), getenv("PG_LIVE_THROTTLED_KEY"), version);
    if (got.compare(0, 15, "ThrottledFault ") == 0) throttled = got;
    else failures += expect("throttled partner", got, "NotFoundFault account");
  }
  if (throttled.empty() || throttled == "ThrottledFault 0") {
    std::cerr << "five quick calls at 1/s: no ThrottledFault with RetryAfterSeconds >= 1" << std::endl;
    failures++;
  }
  if (failures) return 1;
  std::cout << "LIVE-OK soap1" << (version == 2 ? "2" : "1") << " $cls: AccessDeniedFault authentication-failed, "
            << "NotFoundFault account, ThrottledFault RetryAfterSeconds=" << throttled.substr(15)
            << " (the fault's SOAP_ENV__Detail deserialised by the proxy)" << std::endl;
  return 0;
}
CPP
    step "g++ live.cpp" g++ -O0 -std=c++11 "${GSOAP_CFLAGS[@]}" -I. -I/usr/include -c live.cpp -o live.o
    step "g++ link live" g++ -o live live.o soapC.o soap*Proxy.o "${GSOAP_LIBS[@]}"
    ./live 2>live.err || { cat live.err >&2; pg_fail "live calls through the generated proxy failed"; }
fi
