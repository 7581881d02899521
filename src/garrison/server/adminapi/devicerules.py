"""The fleet's device rules (``/admin/v1/device-rules``): which USB devices a station lets in.

A thin surface over the signed content's ``device-rules`` rule set (content/devicerules.py):
viewers read, admins write; each change is a new version, audited, applied by the agents'
device control at their next check-in.  The first matching rule decides.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from garrison.common import devices
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.schemas import Strict
from garrison.server.content import actions, devicerules

router = APIRouter(prefix="/device-rules", tags=["prevention"])
RuleId = Annotated[int, Path(description="the rule's id", ge=1, le=2**31 - 1)]


class DeviceRuleIn(Strict):
    action: Literal["allow", "block"]
    device_class: str = Field(
        default="usb", description=f"one of {', '.join(devices.CLASSES)} (usb: any USB device)"
    )
    vendor: str = Field(default="*", description="USB vendor id, 4 hex digits, or *")
    product: str = Field(default="*", description="USB product id, 4 hex digits, or *")
    serial: str | None = Field(
        default=None, description="the device's serial number (any if absent)"
    )
    comment: str = Field(default="", max_length=devicerules.MAX_COMMENT)
    position: int | None = Field(
        default=None,
        ge=0,
        le=devicerules.MAX_RULES,
        description="where in the list (0: first); absent: last",
    )


class DeviceRuleOut(BaseModel):
    id: int
    action: str
    device_class: str
    vendor: str
    product: str
    serial: str | None
    rule: str = Field(description="the rule's line in the rule set")
    comment: str
    added_by: str
    added_at: str
    version: int = Field(description="the device-rules rule set's version holding it")


class DeviceRulesOut(BaseModel):
    version: int = Field(description="the device-rules rule set's latest version (0: none)")
    ruleset: str = devicerules.NAME
    rules: list[DeviceRuleOut]


class DeviceRuleRemovedOut(BaseModel):
    id: int
    version: int


@router.post("", response_model=DeviceRuleOut, status_code=201, summary="Add a device rule")
def add(body: DeviceRuleIn, actor: Admin, ctx: Ctx) -> DeviceRuleOut:
    rule = devicerules.rule_of(
        body.action, body.device_class, body.vendor, body.product, body.serial
    )
    version, entry = actions.device_rule_add(ctx.content, actor, rule, body.comment, body.position)
    return DeviceRuleOut(**entry.view(), version=version)


@router.get("", response_model=DeviceRulesOut, summary="The fleet's device rules, in order")
def list_rules(actor: Viewer, ctx: Ctx) -> DeviceRulesOut:
    with ctx.db.reading() as session:
        version, found = devicerules.entries(session)
    return DeviceRulesOut(
        version=version, rules=[DeviceRuleOut(**e.view(), version=version) for e in found]
    )


@router.delete("/{rule_id}", response_model=DeviceRuleRemovedOut, summary="Remove a device rule")
def remove(rule_id: RuleId, actor: Admin, ctx: Ctx) -> DeviceRuleRemovedOut:
    version = actions.device_rule_remove(ctx.content, actor, rule_id)
    return DeviceRuleRemovedOut(id=rule_id, version=version)
