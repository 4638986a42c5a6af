#!/usr/bin/env bash
# JAX-WS RI (Debian package `jaxws`, wsimport 2.3) conformance check.
#
# Usage: tests/toolkits/wsimport.sh WSDL
#
# Runs  wsimport -keep [-extension] -XadditionalHeaders -d OUT -s SRC WSDL
# (wsimport compiles the generated Java itself; a javac error fails the run).
# -extension is passed only when the WSDL has a SOAP 1.2 binding: the SOAP 1.1-only
# view must import WITHOUT it. Override with PG_WSIMPORT_EXTENSION=0|1.
# Then asserts the generated SEI has, for every portType operation, a wrapper-style
# method (@RequestWrapper) with the soap:header element (PartnerAuth / CallbackAuth)
# as a `@WebParam(name = "...", ..., header = true)` parameter. A WSDL that binds no
# soap:header on any input (the enrollment contract) must give methods with no
# `header = true` parameter at all.
# With PG_LIVE_ENDPOINT set (tests/toolkits.rs does) and a WSDL with the PartnerAuth header,
# a Java client compiled against the generated code calls GetAccount through every port the
# WSDL has against that gateway and must catch the generated checked exceptions with their
# typed fault info: a wrong key -> AccessDeniedFaultMessage (authentication-failed), an unknown
# account -> NotFoundFaultMessage (account), the throttled partner -> ThrottledFaultMessage
# (RetryAfterSeconds). A ClientTransportException (what a SOAP 1.2 fault with 403/404/429
# gave) fails it. Prints "LIVE-OK soap11|soap12 <port> ..." per port.
set -euo pipefail
PG_TOOL=wsimport
# shellcheck source=tests/toolkits/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 WSDL" >&2; exit 2; }
pg_need wsimport java javac xmllint
pg_stage "$1"

mapfile -t ops < <(pg_operations "$PG_WSDL")
mapfile -t headers < <(pg_headers "$PG_WSDL")
(( ${#ops[@]} > 0 )) || pg_fail "no portType operations found in $1"
# A WSDL may bind no header at all (the anonymous enrollment contract); then no method may
# have a header parameter. Bound on any input means required on every method.

soap12_bindings=$(xmllint --xpath 'count(//*[local-name()="binding" and namespace-uri()="http://schemas.xmlsoap.org/wsdl/soap12/"])' "$PG_WSDL")
ext=()
case "${PG_WSIMPORT_EXTENSION:-auto}" in
    1) ext=(-extension) ;;
    0) ;;
    *) [[ "$soap12_bindings" != 0 ]] && ext=(-extension) ;;
esac

cd "$PG_STAGE"
mkdir -p out src
log="$PG_STAGE/wsimport.log"
cmd=(wsimport -keep "${ext[@]}" -XadditionalHeaders -d out -s src "$(basename "$PG_WSDL")")
pg_info "$(wsimport -version 2>&1 | sed -n 1p); ${cmd[*]}"
rc=0
"${cmd[@]}" >"$log" 2>&1 || rc=$?
sed -e '/^[[:space:]]*$/d' -e 's/^/    /' "$log"

# Each [WARNING]/[ERROR] block runs until the next blank line; print it on one line.
report() {
    awk -v tag="$1" -v tool="$PG_TOOL" -v kind="$2" '
        /^\[(WARNING|ERROR|INFO)\]/ { flush(); if (index($0, "[" tag "]") == 1) { msg = $0; sub(/^\[[A-Z]+\] */, "", msg) } ; next }
        /^[[:space:]]*$/ { flush(); next }
        msg != "" { line = $0; gsub(/^[[:space:]]+/, "", line); msg = msg " | " line }
        function flush() { if (msg != "") print kind " [" tool "]: " msg; msg = "" }
        END { flush() }' "$log" | sed "s|file:$PG_STAGE/|file:|g"
}
report WARNING TOOLKIT-WARNING
# javac warnings (wsimport passes them through) count as toolkit warnings too
grep -E '^(warning:|.*\.java:[0-9]+: warning:)' "$log" | sed "s/^/TOOLKIT-WARNING [$PG_TOOL]: javac: /" || true
errors=$(report ERROR TOOLKIT-ERROR)
if (( rc != 0 )) || [[ -n "$errors" ]]; then
    [[ -n "$errors" ]] && echo "$errors" >&2
    pg_fail "wsimport failed (exit $rc) on $1"
fi

# --- the generated service endpoint interface(s) -------------------------------
mapfile -t seis < <(grep -rlE '^public interface ' src --include='*.java' | xargs -r grep -l '^@WebService(' || true)
(( ${#seis[@]} > 0 )) || pg_fail "no @WebService interface generated"
pg_info "SEI: ${seis[*]#src/}"
nops=${#ops[@]}
for sei in "${seis[@]}"; do
    cls="out/${sei#src/}"; cls="${cls%.java}.class"
    [[ -f "$cls" ]] || pg_fail "SEI not compiled: $cls missing (use -keep without -Xnocompile)"
    methods=$(grep -c '@WebMethod(' "$sei" || true)
    wrappers=$(grep -c '@RequestWrapper(' "$sei" || true)
    [[ "$methods" == "$nops" ]] || pg_fail "$sei: $methods @WebMethod, expected $nops operations"
    [[ "$wrappers" == "$nops" ]] \
        || pg_fail "$sei: $wrappers of $nops methods are wrapper-style (@RequestWrapper); the rest were unwrapped to BARE style (wrapper element name must equal the operation name, have a sequence of elements, and no other body parts)"
    for op in "${ops[@]}"; do
        grep -q "@WebMethod(operationName = \"$op\"" "$sei" \
            || pg_fail "$sei: no method for operation $op"
    done
    for h in "${headers[@]}"; do
        n=$(grep -E "@WebParam\(name = \"$h\".*header = true" "$sei" | wc -l)
        [[ "$n" == "$nops" ]] \
            || pg_fail "$sei: header $h is a 'header = true' parameter in $n of $nops methods (is -XadditionalHeaders honoured?)"
    done
    if (( ${#headers[@]} == 0 )); then
        n=$(grep -cE '@WebParam\(.*header = true' "$sei" || true)
        [[ "$n" == 0 ]] || pg_fail "$sei: the WSDL binds no soap:header, but $n 'header = true' parameter(s) were generated"
    fi
done
pg_info "OK $1: ${#seis[@]} SEI, $nops wrapper-style operations with header(s) ${headers[*]:-none}; compiled $(find out -name '*.class' | wc -l) classes${ext:+ (with -extension)}"

# --- live calls through the generated client -----------------------------------------
if [[ -n "${PG_LIVE_ENDPOINT:-}" ]] && printf '%s\n' "${headers[@]}" | grep -qx PartnerAuth; then
    mapfile -t ports < <("$PG_TOOLKITS_DIR/contract-facts.sh" "$PG_WSDL" | sed -n 's/^port \([^ ]*\) [^ ]* \(soap1[12]\)$/\1 \2/p')
    (( ${#ports[@]} > 0 )) || pg_fail "no SOAP port in $1"
    # JDK 11+ has no JAX-WS: the runtime is the jaxws package's jars.
    JAXWS_CP="${PG_JAXWS_CLASSPATH:-/usr/share/java/*}"
    cat >LiveCheck.java <<'JAVA'
import java.io.File;
import javax.xml.namespace.QName;
import javax.xml.ws.BindingProvider;
import partnergate.partner.common.v1.PartnerAuth;
import partnergate.partner.v1.*;

public class LiveCheck {
    static final String MISSING = "ACC-9999999999";

    static PartnerAuth auth(String id, String key) {
        PartnerAuth a = new PartnerAuth();
        a.setPartnerId(id);
        a.setApiKey(key);
        return a;
    }

    /** The typed fault a GetAccount call ends in: "Kind detail", or an exception. */
    static String call(PartnerApi api, String id, String key) throws Exception {
        try {
            api.getAccount(MISSING, auth(id, key));
            throw new Exception("GetAccount(" + MISSING + ") returned no fault");
        } catch (AccessDeniedFaultMessage e) {
            return "AccessDeniedFault " + e.getFaultInfo().getReason().value();
        } catch (NotFoundFaultMessage e) {
            return "NotFoundFault " + e.getFaultInfo().getEntity().value();
        } catch (ThrottledFaultMessage e) {
            return "ThrottledFault " + e.getFaultInfo().getRetryAfterSeconds();
        } catch (InvalidRequestFaultMessage | ConflictFaultMessage | UpstreamUnavailableFaultMessage e) {
            throw new Exception("unexpected typed fault " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    static void expect(String port, String what, String got, String want) throws Exception {
        if (!got.equals(want)) throw new Exception(port + " " + what + ": got " + got + ", expected " + want);
    }

    public static void main(String[] args) throws Exception {
        String endpoint = System.getenv("PG_LIVE_ENDPOINT");
        String id = System.getenv("PG_LIVE_PARTNER"), key = System.getenv("PG_LIVE_KEY");
        String wrong = key.substring(0, key.length() - 1) + (key.endsWith("x") ? "y" : "x");
        PartnerApiService svc = new PartnerApiService(new File(args[0]).toURI().toURL());
        for (int i = 1; i + 1 < args.length; i += 2) {
            String port = args[i], version = args[i + 1];
            PartnerApi api = svc.getPort(new QName("urn:partnergate:partner:v1", port), PartnerApi.class);
            ((BindingProvider) api).getRequestContext().put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, endpoint);
            expect(port, "wrong key", call(api, id, wrong), "AccessDeniedFault authentication-failed");
            expect(port, "unknown account", call(api, id, key), "NotFoundFault account");
            String throttled = null;
            for (int n = 0; n < 5 && throttled == null; n++) {
                String got = call(api, System.getenv("PG_LIVE_THROTTLED_PARTNER"), System.getenv("PG_LIVE_THROTTLED_KEY"));
                if (got.startsWith("ThrottledFault ")) throttled = got;
                else expect(port, "throttled partner", got, "NotFoundFault account");
            }
            if (throttled == null) throw new Exception(port + ": five quick calls at 1/s were never throttled");
            if (Long.parseLong(throttled.substring("ThrottledFault ".length())) < 1) throw new Exception(port + ": " + throttled);
            System.out.println("LIVE-OK " + version + " " + port + ": AccessDeniedFaultMessage authentication-failed, "
                + "NotFoundFaultMessage account, ThrottledFaultMessage RetryAfterSeconds="
                + throttled.substring("ThrottledFault ".length()) + " (checked exceptions with typed fault info)");
        }
    }
}
JAVA
    javac -nowarn -cp "out:$JAXWS_CP" -d out LiveCheck.java 2>javac-live.log \
        || { cat javac-live.log >&2; pg_fail "the live client does not compile against the generated code"; }
    args=()
    for p in "${ports[@]}"; do args+=($p); done
    java -cp "out:$JAXWS_CP" LiveCheck "$PG_WSDL" "${args[@]}" 2>java-live.log \
        || { cat java-live.log >&2; pg_fail "live calls through the generated client failed"; }
fi
