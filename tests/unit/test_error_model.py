"""The error model: domain errors carry no HTTP status; the edge maps every type to one."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import garrison.server
from garrison.server import errors as e
from garrison.server.errors_http import STATUSES, status_of


def all_error_types() -> set[type[e.GarrisonError]]:
    """Every GarrisonError subclass defined anywhere in the server package."""
    for module in pkgutil.walk_packages(garrison.server.__path__, "garrison.server."):
        if ".migrations." not in module.name:
            importlib.import_module(module.name)
    found: set[type[e.GarrisonError]] = set()
    todo: list[type[e.GarrisonError]] = [e.GarrisonError]
    while todo:
        kind = todo.pop()
        found.add(kind)
        todo.extend(kind.__subclasses__())
    return found


def test_no_domain_error_carries_an_http_status() -> None:
    kinds = all_error_types()
    assert len(kinds) >= len(STATUSES)
    for kind in kinds:
        assert "status" not in vars(kind), f"{kind.__qualname__} sets an HTTP status"
        assert isinstance(vars(kind).get("code", e.GarrisonError.code), str)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (e.GarrisonError, 400),
        (e.MalformedRequestError, 400),
        (e.InvalidInputError, 422),
        (e.NotAuthenticatedError, 401),
        (e.ForbiddenError, 403),
        (e.EnrollmentRefusedError, 403),
        (e.NotFoundError, 404),
        (e.UnknownStationError, 404),  # by its base class
        (e.UnknownJobError, 404),
        (e.ConflictError, 409),
        (e.UpstreamFailedError, 502),
    ],
)
def test_status_of_walks_the_class_hierarchy(kind: type[e.GarrisonError], status: int) -> None:
    assert status_of(kind("x")) == status


def test_a_new_subclass_gets_its_base_status() -> None:
    class StaleThingError(e.ConflictError):
        code = "stale_thing"

    assert status_of(StaleThingError("x")) == 409
