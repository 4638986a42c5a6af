#!/usr/bin/env python3
"""Print the ~200 KB FindAccountsResponse of the large load case (bench/load.sh) on stdout.

The same message as bulk_response() in benches/support/mod.rs: the account of
tests/data/GetAccount/response.xml, its notes replaced by 1,500 characters, 100 times with
distinct account numbers (the contract's maxOccurs for Account in FindAccountsResponse).
bench/lib.sh passes it through `partnergate check --response FindAccounts`, which both proves
it valid and yields the canonical form the upstream serves.

Usage: gen_bulk_response.py REPO_ROOT
"""
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
one = (root / "tests/data/GetAccount/response.xml").read_text(encoding="utf-8")
start = one.index("<acc:Account>")
end = one.index("</acc:Account>") + len("</acc:Account>")
notes = ("Installation on weekdays; ask for the site manager. " * 29).rstrip()
account = one[start:end].replace(
    "Preferred contact by e-mail.\nInstallation appointments on weekdays only.", notes)
accounts = "".join(account.replace("ACC-0000001001", "ACC-%010d" % (1000 + i)) for i in range(100))
sys.stdout.write(
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:cmn="urn:partnergate:partner:common:v1" xmlns:acc="urn:partnergate:partner:accounts:v1">'
    "<soapenv:Body><acc:FindAccountsResponse>" + accounts +
    "</acc:FindAccountsResponse></soapenv:Body></soapenv:Envelope>")
