"""Every golden JSON file validates against the OpenAPI document's schemas (tests/rest_client.rs
runs this): each operation's request.json, without the members its route takes from the URL,
against the route's request body schema (or, for a GET, the URL members against the
parameters' schemas); each response.json against the 200 answer's schema; each fault detail's
JSON against the schema of the Problem member named after it. And some values the codec
refuses are refused by the schemas too. Prints SCHEMAS-OK and the count on success.

Arguments: the OpenAPI document, the tests/data directory.
"""

import copy
import json
import os
import sys

from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def main():
    doc_path, data = sys.argv[1], sys.argv[2]
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(doc, default_specification=DRAFT202012))

    def validator(schema):
        return OAS31Validator({"$ref": "urn:openapi#" + schema["$ref"][1:]} if "$ref" in schema else schema, registry=registry)

    def check(schema, value, what, valid=True):
        errors = list(validator(schema).iter_errors(value))
        if valid and errors:
            raise AssertionError(f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}")
        if not valid and not errors:
            raise AssertionError(f"{what}: accepted by the schema")

    count = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            name = op["operationId"]
            with open(os.path.join(data, name, "request.json"), encoding="utf-8") as f:
                request = json.load(f)
            for p in op.get("parameters", []):
                if p["name"] in request:
                    check(p["schema"], request.pop(p["name"]), f"{name} parameter {p['name']}")
                    count += 1
            body = op.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                check(schema, request, f"{name} request body")
                count += 1
                if name == "CreateAccount":
                    for bad, what in [
                        ({**request, "Nickname": "x"}, "unknown member"),
                        ({**request, "AccountType": None}, "null"),
                        ({**request, "AccountType": "HOUSEHOLD"}, "enumeration"),
                        ({k: v for k, v in request.items() if k != "Contact"}, "missing member"),
                    ]:
                        check(schema, bad, f"CreateAccount {what}", valid=False)
                    bad = copy.deepcopy(request)
                    bad["Contact"]["Phone"] = "030 1234567"
                    check(schema, bad, "CreateAccount pattern", valid=False)
                    bad["Contact"]["Phone"] = " +493012345678"
                    check(schema, bad, "CreateAccount pattern (leading space)", valid=False)
                    count += 6
            else:
                assert not request, f"{name}: members left for a GET: {sorted(request)}"
            with open(os.path.join(data, name, "response.json"), encoding="utf-8") as f:
                response = json.load(f)
            check(op["responses"]["200"]["content"]["application/json"]["schema"], response, f"{name} response")
            count += 1
    problem = doc["components"]["schemas"]["Problem"]["properties"]
    faults = os.path.join(data, "faults")
    for file in sorted(os.listdir(faults)):
        if file.endswith(".json"):
            with open(os.path.join(faults, file), encoding="utf-8") as f:
                detail = json.load(f)
            check(problem[file[: -len(".json")]], detail, f"fault {file}")
            count += 1
    print("SCHEMAS-OK", count)


if __name__ == "__main__":
    main()
