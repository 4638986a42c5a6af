#!/usr/bin/env python3
"""zeep conformance check for a partnergate WSDL.

Usage: ${PARTNERGATE_VENV:-/opt/partnergate/venv}/bin/python tests/toolkits/zeep.py WSDL

* copies WSDL + wsdl/*.xsd into a temp dir (relative schemaLocations resolve there)
* loads it with zeep (strict mode); every service port / binding must load
* every portType operation must be present on every binding, with the soap:header
  element (PartnerAuth / CallbackAuth) exposed as a header of the input message
  -- on EVERY operation as soon as the WSDL binds a header on any input; a WSDL that
  binds no header anywhere (the enrollment contract) must give operations with no
  input header and no _soapheaders in their signature
* builds one request with client.create_message(..., _soapheaders=...) per port and
  asserts the header element is in the produced envelope (or, for a header-less
  contract, that the envelope has no header entries)
* with PG_LIVE_ENDPOINT set (tests/toolkits.rs does) and a WSDL with the PartnerAuth header:
  calls GetAccount through every port against that gateway and requires zeep's Fault to carry
  the typed detail, parsed with the schema: a wrong key -> AccessDeniedFault
  authentication-failed; an unknown account -> NotFoundFault account; the throttled partner
  (PG_LIVE_THROTTLED_*) -> ThrottledFault with RetryAfterSeconds. Prints
  "LIVE-OK soap11|soap12 <port> ..." per port.
Any Python warning or log record >= WARNING emitted while doing so is printed as
"TOOLKIT-WARNING [zeep]: ..."; exits non-zero on any error.
"""
import datetime
import decimal
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

TOOL = "zeep"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

# This file is called zeep.py: drop its own directory from sys.path so that
# "import zeep" picks up the real package from the venv, not this script.
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

try:
    import zeep
    import zeep.exceptions
    from lxml import etree
    from zeep import xsd
    from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding
    from zeep.xsd.types import builtins as xsd_builtins
except ImportError as exc:  # pragma: no cover - environment problem
    venv = os.environ.get("PARTNERGATE_VENV", "/opt/partnergate/venv")
    print(
        f"TOOLKIT-ERROR [{TOOL}]: zeep not installed ({exc}): run `sudo .ci/setup` "
        f"and use {venv}/bin/python",
        file=sys.stderr,
    )
    sys.exit(1)


class Failure(Exception):
    pass


class WarningCollector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


def contract_facts(wsdl):
    out = subprocess.run(
        [os.path.join(HERE, "contract-facts.sh"), wsdl],
        check=True, capture_output=True, text=True,
    ).stdout
    ops, headers, ports = set(), set(), []
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "operation":
            ops.add(rest)
        elif kind == "header":
            headers.add(rest)
        elif kind == "port":
            ports.append(rest.split()[0])
    return ops, headers, ports


def stage(src):
    if not os.path.isfile(src):
        raise Failure(f"no such WSDL: {src}")
    tmp = tempfile.mkdtemp(prefix="pg-toolkit-zeep.")
    xsd_dirs = [os.environ.get("PARTNERGATE_XSD_DIR", os.path.join(ROOT, "wsdl")),
                os.path.dirname(os.path.abspath(src))]
    for d in xsd_dirs:
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith(".xsd"):
                    shutil.copy(os.path.join(d, name), tmp)
    shutil.copy(src, tmp)
    return tmp, os.path.join(tmp, os.path.basename(src))


# ---------------------------------------------------------------- sample values
def sample_simple(xsd_type):
    accepted = getattr(xsd_type, "accepted_types", None) or [str]
    first = accepted[0]
    if first is bool:
        return True
    if first is int:
        return 1
    if first in (decimal.Decimal, float):
        return decimal.Decimal("1")
    if first is datetime.datetime:
        return datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    if first is datetime.date:
        return datetime.date(2024, 1, 2)
    if first is datetime.time:
        return datetime.time(3, 4, 5)
    if isinstance(xsd_type, xsd_builtins.Base64Binary) or isinstance(
        xsd_type, xsd_builtins.HexBinary
    ):
        return b"x"
    if first is not str and first.__name__ == "Duration":
        return datetime.timedelta(seconds=1)
    # enumerations: zeep does not validate facets, but use a legal value anyway
    enum = getattr(xsd_type, "_enumeration", None) or []
    return enum[0] if enum else "x"


def sample_value(xsd_type, depth=0):
    if depth > 12:
        raise Failure("type nesting too deep for sample generation")
    if isinstance(xsd_type, xsd.ComplexType):
        values = {}
        for name, element in xsd_type.elements:
            if isinstance(element, (xsd.Choice, xsd.Sequence, xsd.All, xsd.Group)):
                # take the first branch of a choice / inline compositor
                continue
            if getattr(element, "min_occurs", 1) == 0:
                continue
            if isinstance(element, xsd.Any):
                continue
            val = sample_value(element.type, depth + 1)
            values[name] = [val] if getattr(element, "max_occurs", 1) not in (1, None) else val
        for name, attr in getattr(xsd_type, "attributes", []):
            if getattr(attr, "required", False):
                values[name] = sample_simple(attr.type)
        return values
    return sample_simple(xsd_type)


def element_kwargs(element):
    value = sample_value(element.type)
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------- checks
def check(src):
    expected_ops, expected_headers, expected_ports = contract_facts(src)
    if not expected_ops:
        raise Failure("contract-facts found no portType operations")
    # no header bound anywhere (the anonymous enrollment contract) is allowed: then
    # check_port requires the opposite, no header on any operation
    tmp, wsdl = stage(src)
    try:
        settings = zeep.Settings(strict=True, xml_huge_tree=False)
        client = zeep.Client(wsdl, settings=settings)
        seen_ports = []
        for service in client.wsdl.services.values():
            for port_name, port in service.ports.items():
                seen_ports.append(port_name)
                check_port(client, service, port_name, port, expected_ops, expected_headers)
        missing = set(expected_ports) - set(seen_ports)
        if missing:
            raise Failure(f"zeep did not load port(s): {sorted(missing)}")
        if os.environ.get("PG_LIVE_ENDPOINT") and "PartnerAuth" in expected_headers:
            for service in client.wsdl.services.values():
                for port_name, port in service.ports.items():
                    live(client, port_name, port.binding)
        print(f"[{TOOL}] ports: {len(seen_ports)}, operations: {len(expected_ops)}, "
              f"headers: {sorted(expected_headers)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_port(client, service, port_name, port, expected_ops, expected_headers):
    binding = port.binding
    ops = binding._operations
    missing = expected_ops - set(ops)
    extra = set(ops) - expected_ops
    if missing:
        raise Failure(f"port {port_name}: operations missing in zeep: {sorted(missing)}")
    if extra:
        raise Failure(f"port {port_name}: unexpected operations in zeep: {sorted(extra)}")
    if not isinstance(binding, (Soap11Binding, Soap12Binding)):
        raise Failure(f"port {port_name}: not a SOAP binding ({type(binding).__name__})")
    env_ns = SOAP12_ENV if isinstance(binding, Soap12Binding) else SOAP11_ENV
    for name in sorted(ops):
        op = ops[name]
        header = getattr(op.input, "header", None)
        header_names = set()
        if header is not None and getattr(header.type, "elements", None):
            header_names = {el.qname.localname for _, el in header.type.elements}
        if not expected_headers and header_names:
            raise Failure(
                f"port {port_name} op {name}: the WSDL binds no soap:header, but zeep "
                f"exposes input header(s) {sorted(header_names)}; signature: "
                f"{op.input.signature()}"
            )
        if not expected_headers <= header_names:
            raise Failure(
                f"port {port_name} op {name}: input header(s) {sorted(expected_headers)} "
                f"not exposed by zeep (got {sorted(header_names)}); signature: "
                f"{op.input.signature()}"
            )
        if ("_soapheaders=" in (op.input.signature() or "")) != bool(expected_headers):
            what = "lacks" if expected_headers else "has (no header is bound)"
            raise Failure(f"port {port_name} op {name}: signature {what} _soapheaders: "
                          f"{op.input.signature()}")

    proxy = client.bind(service.name, port_name)
    errors = []
    for name in sorted(ops):
        op = ops[name]
        try:
            body = op.input.body
            kwargs = element_kwargs(body) if body is not None else {}
            headers = []
            header = op.input.header if expected_headers else None
            for _, el in (header.type.elements if header is not None else []):
                hval = sample_value(el.type)
                headers.append(el(**hval) if isinstance(hval, dict) else el(hval))
            node = client.create_message(proxy, name, _soapheaders=headers, **kwargs)
        except Exception as exc:  # try the next operation
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        xml = etree.tostring(node, pretty_print=True).decode()
        if etree.QName(node).namespace != env_ns:
            raise Failure(f"port {port_name}: envelope namespace {etree.QName(node).namespace}"
                          f" != {env_ns}")
        hdr = node.find(f"{{{env_ns}}}Header")
        got = {etree.QName(c).localname for c in (hdr if hdr is not None else [])}
        if not expected_headers <= got:
            raise Failure(f"port {port_name} op {name}: header {sorted(expected_headers)} "
                          f"missing from produced envelope:\n{xml}")
        if not expected_headers and got:
            raise Failure(f"port {port_name} op {name}: the WSDL binds no soap:header, but "
                          f"the produced envelope has header(s) {sorted(got)}:\n{xml}")
        print(f"[{TOOL}] {port_name}: {len(ops)} operations, header(s) "
              f"{sorted(expected_headers) or 'none'} on every input; "
              f"create_message({name}) ok")
        if os.environ.get("PG_VERBOSE"):
            print(xml)
        return
    raise Failure(f"port {port_name}: create_message failed for every operation:\n  "
                  + "\n  ".join(errors))


# ------------------------------------------------------------------- live calls
CMN = "urn:partnergate:partner:common:v1"
MISSING_ACCOUNT = "ACC-9999999999"


def typed_fault(client, fault, what):
    """(detail element local name, parsed value) of a zeep Fault's typed detail."""
    if fault.detail is None or len(fault.detail) == 0:
        raise Failure(f"{what}: a fault without a detail: {fault.message!r}")
    el = fault.detail[0]
    qname = etree.QName(el)
    value = client.get_element(qname.text).parse(el, client.wsdl.types)
    return qname.localname, value


def live(client, port_name, binding):
    version = "soap12" if isinstance(binding, Soap12Binding) else "soap11"
    svc = client.create_service(binding.name, os.environ["PG_LIVE_ENDPOINT"])
    auth = client.get_element(f"{{{CMN}}}PartnerAuth")

    def call(partner, key, what):
        try:
            svc.GetAccount(AccountNumber=MISSING_ACCOUNT,
                           _soapheaders=[auth(PartnerId=partner, ApiKey=key)])
        except zeep.exceptions.Fault as fault:
            return typed_fault(client, fault, what)
        raise Failure(f"{port_name} {what}: GetAccount({MISSING_ACCOUNT}) returned no fault")

    partner, key = os.environ["PG_LIVE_PARTNER"], os.environ["PG_LIVE_KEY"]
    wrong = key[:-1] + ("y" if key.endswith("x") else "x")
    name, value = call(partner, wrong, "wrong key")
    if name != "AccessDeniedFault" or value.Reason != "authentication-failed":
        raise Failure(f"{port_name} wrong key: got {name} {value}")
    name, value = call(partner, key, "unknown account")
    if name != "NotFoundFault" or value.Entity != "account":
        raise Failure(f"{port_name} unknown account: got {name} {value}")
    tp, tk = os.environ["PG_LIVE_THROTTLED_PARTNER"], os.environ["PG_LIVE_THROTTLED_KEY"]
    for _ in range(5):
        name, value = call(tp, tk, "throttled")
        if name == "ThrottledFault":
            if value.RetryAfterSeconds < 1:
                raise Failure(f"{port_name} throttled: RetryAfterSeconds {value.RetryAfterSeconds}")
            break
        if name != "NotFoundFault":
            raise Failure(f"{port_name} throttled partner: got {name} {value}")
    else:
        raise Failure(f"{port_name}: five quick calls at 1/s were never throttled")
    print(f"LIVE-OK {version} {port_name}: AccessDeniedFault authentication-failed, "
          f"NotFoundFault account, ThrottledFault RetryAfterSeconds={value.RetryAfterSeconds} "
          f"(zeep.exceptions.Fault with the typed detail)")


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} WSDL", file=sys.stderr)
        return 2
    collector = WarningCollector()
    logging.getLogger().addHandler(collector)
    logging.getLogger().setLevel(logging.WARNING)
    rc = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check(argv[1])
            print(f"[{TOOL}] zeep {zeep.__version__}: OK {argv[1]}")
        except Failure as exc:
            print(f"TOOLKIT-ERROR [{TOOL}]: {exc}", file=sys.stderr)
            rc = 1
        except Exception as exc:  # zeep raised while loading / rendering
            import traceback
            traceback.print_exc()
            print(f"TOOLKIT-ERROR [{TOOL}]: {type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
    for w in caught:
        print(f"TOOLKIT-WARNING [{TOOL}]: {w.category.__name__}: {w.message}")
    for m in collector.messages:
        print(f"TOOLKIT-WARNING [{TOOL}]: {m}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
