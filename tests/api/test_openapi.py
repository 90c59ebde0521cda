"""``/openapi.json`` is a valid OpenAPI 3.1 document that describes every route."""

from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate

from api.app import create_app
from api.connections import TOO_MANY_CONNECTIONS

from .conftest import RunningServer


async def test_the_document_is_valid_and_lists_every_route(server: RunningServer) -> None:
    status, document = await server.api.request("GET", "/openapi.json")
    assert status == 200
    validate(document)
    app = create_app(server.settings)
    served = {
        (route.method.lower(), re.sub(r"\{(\w+)\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/static")
        and route.resource.canonical != "/"
    }
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented


async def test_every_contract_error_string_is_documented(server: RunningServer) -> None:
    _, document = await server.api.request("GET", "/openapi.json")
    text = str(document)
    for message in (
        "Invalid request schema",
        "Unauthorized, token missing or invalid",
        "Forbidden, teacher access required",
        "Forbidden, student access required",
        "Forbidden, not class teacher",
        "Forbidden, not enrolled in class",
        "Class not found",
        "Student not found",
        "Email already exists",
        "Invalid email or password",
    ):
        assert message in text, message


async def test_the_class_detail_is_documented_field_for_field(server: RunningServer) -> None:
    _, document = await server.api.request("GET", "/openapi.json")
    room = await server.classroom(students=1)
    path = f"/class/{room.class_id}"
    token = room.teacher.token
    detail = await server.api.call("GET", path, token=token)
    updated = await server.api.call(
        "PUT", f"{path}/settings", token=token, body={"allowStudentScreenShare": True}
    )

    def answer(route: str, method: str) -> Any:
        response = document["paths"][route][method]["responses"]["200"]
        return response["content"]["application/json"]["schema"]["properties"]["data"]

    for schema, real in (
        (answer("/class/{id}", "get"), detail),
        (answer("/class/{id}/settings", "put"), updated),
    ):
        assert set(schema["properties"]) == set(schema["required"]) == set(real)
        assert set(schema["properties"]["policy"]["properties"]) == set(real["policy"])
    request = document["paths"]["/class/{id}/settings"]["put"]["requestBody"]
    settable = request["content"]["application/json"]["schema"]["properties"]
    booleans = {"allowStudentRecordings", "allowStudentScreenShare", "allowStudentUnmute"}
    assert set(settable) == {*updated["policy"], *booleans}
    assert settable["allowStudentScreenShare"] == {"type": "boolean"}


async def test_every_operation_documents_the_connection_cap(server: RunningServer) -> None:
    _, document = await server.api.request("GET", "/openapi.json")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refused = operation["responses"].get("503")
            assert refused is not None, (method, path)
            assert TOO_MANY_CONNECTIONS in refused["description"], (method, path)
            assert "Retry-After" in refused["headers"], (method, path)
