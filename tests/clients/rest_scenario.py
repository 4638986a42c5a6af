"""The REST face through a client openapi-python-client generated from the served OpenAPI
document (tests/rest_client.rs generates it and runs this script with the client importable as
`pg_rest_client`).

CreateAccount -> GetAccount -> AddService with the generated models (bodies from the golden
JSON fixtures), then a refused call: a wrong key, which must come back as the generated
`Problem` model with the authentication-failed type and a 401. Prints REST-CLIENT-OK and the
account number on success; any failure raises.

Environment: PG_REST_BASE (the servers[0].url of the served document), PG_REST_PARTNER,
PG_REST_KEY, PG_REST_DATA (tests/data).
"""

import json
import os
import sys

from pg_rest_client import AuthenticatedClient
from pg_rest_client.api.accounts import add_service, create_account, get_account
from pg_rest_client.models import (
    AddServiceRequest,
    AddServiceResponse,
    CreateAccountRequest,
    CreateAccountResponse,
    GetAccountResponse,
    Problem,
)


def fixture(op):
    with open(os.path.join(os.environ["PG_REST_DATA"], op, "request.json"), encoding="utf-8") as f:
        return json.load(f)


def client(key):
    return AuthenticatedClient(
        base_url=os.environ["PG_REST_BASE"],
        token=key,
        headers={"X-Partner-Id": os.environ["PG_REST_PARTNER"]},
        raise_on_unexpected_status=True,
    )


def main():
    c = client(os.environ["PG_REST_KEY"])

    created = create_account.sync_detailed(client=c, body=CreateAccountRequest.from_dict(fixture("CreateAccount")))
    assert created.status_code == 200, (created.status_code, created.content)
    assert isinstance(created.parsed, CreateAccountResponse), created.parsed
    number = created.parsed.account.account_number

    got = get_account.sync_detailed(number, client=c)
    assert got.status_code == 200, (got.status_code, got.content)
    assert isinstance(got.parsed, GetAccountResponse), got.parsed
    assert got.parsed.account.account_number == number, got.parsed

    body = fixture("AddService")
    body.pop("AccountNumber")
    added = add_service.sync_detailed(number, client=c, body=AddServiceRequest.from_dict(body))
    assert added.status_code == 200, (added.status_code, added.content)
    assert isinstance(added.parsed, AddServiceResponse), added.parsed

    refused = get_account.sync_detailed(number, client=client("pgk_" + "0" * 40))
    assert refused.status_code == 401, (refused.status_code, refused.content)
    assert refused.headers["content-type"] == "application/problem+json", refused.headers
    problem = refused.parsed
    assert isinstance(problem, Problem), problem
    assert problem.type_ == "urn:partnergate:problem:authentication-failed", problem
    assert problem.status == 401 and problem.reason == "authentication-failed", problem

    print("REST-CLIENT-OK", number, added.parsed.service.service_id, problem.type_)


if __name__ == "__main__":
    main()
    sys.exit(0)
