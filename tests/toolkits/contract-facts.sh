#!/usr/bin/env bash
# Print facts about a WSDL 1.1 document, read with xmllint only (no SOAP toolkit),
# so every toolkit script compares what its toolkit exposes against the contract:
#   operation NAME              one per portType operation (sorted, unique)
#   header ELEMENT              local name of each element bound as soap(12):header on an input
#   header-ns ELEMENT NSURI     namespace of that element
#   port NAME BINDING VERSION   one per service port; VERSION is soap11, soap12 or other
set -euo pipefail
wsdl="$1"
ln() { printf '*[local-name()="%s"]' "$1"; }
xp() { xmllint --xpath "$1" "$wsdl" 2>/dev/null || true; }
# attribute values of an xpath selecting attributes -> one per line
attrs() { xp "$1" | sed -E 's/^ *[A-Za-z_:-]+="([^"]*)"/\1/; s/" [A-Za-z_:-]+="/\n/g' | sed -E 's/"$//' | grep -v '^$' || true; }
local_name() { sed -E 's/^.*://'; }

attrs "//$(ln portType)/$(ln operation)/@name" | sort -u | sed 's/^/operation /'

# soap:header message="tns:M" part="P" on binding inputs -> wsdl:message M / part P / @element
hdr="//$(ln binding)/$(ln operation)/$(ln input)/$(ln header)"
attrs "$hdr/@message" | local_name | sort -u |
while read -r msg; do
    for part in $(attrs "$hdr[@message='$msg' or substring-after(@message,':')='$msg']/@part" | sort -u); do
        p="//$(ln message)[@name='$msg']/$(ln part)[@name='$part']"
        qname=$(attrs "$p/@element" | sed -n 1p)
        [[ -n "$qname" ]] || continue
        prefix=""; [[ "$qname" == *:* ]] && prefix="${qname%%:*}"
        ns=$(xp "string($p/namespace::*[name()='$prefix'])")
        echo "${qname##*:} ${ns}"
    done
done | sort -u | while read -r name ns; do echo "header $name"; echo "header-ns $name $ns"; done

for port in $(attrs "//$(ln service)/$(ln port)/@name"); do
    binding=$(attrs "//$(ln service)/$(ln port)[@name='$port']/@binding" | local_name | sed -n 1p)
    bns=$(xp "string(namespace-uri(//$(ln binding)[@name='$binding']/$(ln binding)))")
    case "$bns" in
        http://schemas.xmlsoap.org/wsdl/soap/) v=soap11 ;;
        http://schemas.xmlsoap.org/wsdl/soap12/) v=soap12 ;;
        *) v=other ;;
    esac
    echo "port $port $binding $v"
done
