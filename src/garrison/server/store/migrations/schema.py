"""The whole schema: imports every slice's models so that ``metadata`` holds all their tables.

It lives with the migrations, not in ``store``, because only what needs the whole schema at
once (Alembic's environment, the schema tests) should depend on every slice."""

from garrison.server.alerts.models import Alert, AlertComment
from garrison.server.audit.models import AuditEntry
from garrison.server.configs.models import (
    ConfigBaseline,
    ConfigDesired,
    ConfigDifference,
    ConfigReport,
)
from garrison.server.content.models import (
    ContentAssignment,
    ContentKey,
    ContentSerial,
    ContentServer,
    RuleSet,
    RuleVersion,
)
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.events.models import ConsumerCursor, Event, EventTerm
from garrison.server.export.models import ExportTarget
from garrison.server.files.models import FileChunk, FileUpload, StoredFile
from garrison.server.hunts.models import Hunt
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.options.models import Option
from garrison.server.procedures.models import (
    Procedure,
    ProcedureError,
    ProcedureSet,
    ProcedureVersion,
)
from garrison.server.scans.models import Scan
from garrison.server.sensors.models import SensorPolicy
from garrison.server.states.models import StationState
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import Base
from garrison.server.tls.models import ClientCertificate
from garrison.server.users.models import ApiToken, ConsoleSession, LoginLockout, User

metadata = Base.metadata

__all__ = [
    "Alert",
    "AlertComment",
    "ApiToken",
    "AuditEntry",
    "Base",
    "ClientCertificate",
    "ConfigBaseline",
    "ConfigDesired",
    "ConfigDifference",
    "ConfigReport",
    "ConsoleSession",
    "ConsumerCursor",
    "ContentAssignment",
    "ContentKey",
    "ContentSerial",
    "ContentServer",
    "EnrollmentKey",
    "Event",
    "EventTerm",
    "ExportTarget",
    "FileChunk",
    "FileUpload",
    "Group",
    "Hunt",
    "Job",
    "JobTarget",
    "LoginLockout",
    "Option",
    "Procedure",
    "ProcedureError",
    "ProcedureSet",
    "ProcedureVersion",
    "RuleSet",
    "RuleVersion",
    "Scan",
    "SensorPolicy",
    "Station",
    "StationState",
    "StoredFile",
    "User",
    "metadata",
    "station_groups",
]
