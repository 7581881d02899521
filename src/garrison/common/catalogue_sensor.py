"""Sensor lifecycle events of the LimaCharlie seed (field names as the seed spells them)."""

from __future__ import annotations

from garrison.common.catalogue_types import EventType, Family, Field
from garrison.common.vocabulary import Severity

SRC = "limacharlie-sensor-events.txt"
TS = Field("ts", "timestamp", doc="epoch timestamp")
INVESTIGATION = Field("INVESTIGATION_ID", doc="investigation id of the command, echoed back")

SENSOR_EVENTS: tuple[EventType, ...] = (
    EventType(
        "CONNECTED",
        SRC,
        "station",
        "The sensor (agent) connected to the server.",
        (
            Field("HOST_NAME", required=True, search="host"),
            Field("IS_SEGREGATED", "boolean", doc="under network isolation now"),
            Field("KERNEL_ACQ_AVAILABLE", "boolean"),
            Field("MAC_ADDRESS", "mac"),
        ),
    ),
    EventType(
        "DISCONNECTED",
        SRC,
        "server",
        "The sensor went silent (no check-in within the offline timeout).",
        (TS,),
        time_field="ts",
        severity=Severity.NOTICE,
    ),
    EventType(
        "STARTING_UP",
        SRC,
        "station",
        "The sensor started.",
        (
            TS,
            Field(
                "UNCLEAN_STOP",
                "boolean",
                doc="Garrison: the previous run ended without a clean stop (killed or crashed)",
            ),
            Field("PREVIOUS_PID", "integer", doc="Garrison: the process id of that run"),
        ),
        time_field="ts",
    ),
    EventType(
        "SHUTTING_DOWN", SRC, "station", "The sensor is shutting down.", (TS,), time_field="ts"
    ),
    EventType(
        "RECEIPT",
        SRC,
        "station",
        "Generic response to a command, with an ERROR code (0 is success).",
        (
            INVESTIGATION,
            Field("ERROR", "integer", True, "error code, 0 on success"),
            Field("ERROR_MESSAGE", doc="error text"),
            Field("JOB_ID", "integer", doc="the Garrison job the receipt answers"),
        ),
    ),
    EventType(
        "CLOUD_NOTIFICATION",
        SRC,
        "station",
        "Receipt from the agent that it received a task, with high-level errors if any.",
        (
            Field("NOTIFICATION_ID", required=True),
            Field(
                "NOTIFICATION",
                "object",
                doc="the notification's content",
                keys=("INVESTIGATION_ID",),
            ),
            Field(
                "HCP_IDENT",
                "object",
                doc="the sensor's identity",
                keys=(
                    "HCP_ORG_ID",
                    "HCP_SENSOR_ID",
                    "HCP_INSTALLER_ID",
                    "HCP_ARCHITECTURE",
                    "HCP_PLATFORM",
                ),
            ),
            INVESTIGATION,
            Field("EXPIRY", "integer"),
            Field("ERROR", "integer"),
            Field("JOB_ID", "integer", doc="the Garrison job the notification is about"),
        ),
    ),
    EventType(
        "SEGREGATE_NETWORK",
        SRC,
        "station",
        "The sensor was isolated from the network.",
        (INVESTIGATION, Field("ERROR", "integer")),
        severity=Severity.WARNING,
    ),
    EventType(
        "SELF_TEST",
        SRC,
        "station",
        "Result of a power-on self test requested from the sensor.",
        (INVESTIGATION, Field("ERROR", "integer"), Field("RESULT", "object")),
    ),
)


# Garrison's own: the agent's report on its sensors (no seed declares one).
GARRISON_SRC = "garrison"
SENSOR_HEALTH_EVENTS: tuple[EventType, ...] = (
    EventType(
        "sensor_health",
        GARRISON_SRC,
        "station",
        "The agent's sensors: state and counters since the agent started, sent periodically "
        "and when a sensor's state changes. Every event a sensor did not deliver is counted "
        "in one of the drop counters or in the kernel overflows.",
        (
            Field("time", "timestamp", True, "when the counters were read"),
            Field("started_at", "timestamp", doc="when the agent started: counters are since"),
            Field("policy_version", doc="the server's sensor policy applied (its version)"),
            Field(
                "policy_error",
                doc="why the latest sensor policy from the server was refused (the previous "
                "one stays)",
            ),
        ),
        families=(
            Family(
                "count",
                (
                    Field("sensor", required=True, doc="sensor name (process, …)"),
                    Field("state", required=True, doc="running, failed, disabled or stopped"),
                    Field("reason", doc="why the sensor is not running"),
                    Field("produced", "integer", doc="events queued to the spool"),
                    Field("dropped", "integer", doc="events lost, all causes below"),
                    Field("dropped_rate_limit", "integer", doc="over the sensor's rate limit"),
                    Field("dropped_queue", "integer", doc="the agent's in-memory queue full"),
                    Field("dropped_spool", "integer", doc="the spool full or failing"),
                    Field(
                        "overflows",
                        "integer",
                        doc="events the kernel dropped before the sensor read them (netlink: "
                        "the gaps in the process connector's sequence numbers; fanotify: "
                        "each FAN_Q_OVERFLOW, one or more events)",
                    ),
                    Field("hash_pending", "integer", doc="large files waiting for a hash"),
                    Field(
                        "excluded",
                        "integer",
                        doc="events not sent because the policy excludes them (not a loss)",
                    ),
                ),
                max_items=64,
            ),
        ),
        time_field="time",
    ),
    EventType(
        "prevention_status",
        GARRISON_SRC,
        "station",
        "The agent's prevention (exec and open blocking, on-access scanning): its state, what "
        "it marks and its counters since it started; sent when its state changes and when a "
        "decision failed open (at most every few seconds).",
        (
            Field("time", "timestamp", True, "when the counters were read"),
            Field("state", required=True, doc="running, failed, idle (nothing to mark) or stopped"),
            Field("reason", doc="why it is not running"),
            Field("on_access", "boolean", doc="on-access scanning of the watched paths is on"),
            Field("blocking", "boolean", doc="the block list is in force (it has entries)"),
            Field("marked", doc="the mount points marked, ';'-separated"),
            Field("blocklist_records", "integer", doc="entries of the block list in force"),
            Field("deadline_ms", "number", doc="decision deadline; past it the access is allowed"),
            Field("decisions", "integer", doc="permission events that needed a verdict"),
            Field("cached", "integer", doc="of which answered from the verdict cache"),
            Field("denied", "integer", doc="accesses denied"),
            Field("fail_open", "integer", doc="accesses allowed undecided (deadline or queue)"),
            Field("fail_open_deadline", "integer", doc="allowed at the decision deadline"),
            Field("fail_open_queue", "integer", doc="allowed because the work queue was full"),
            Field("yara_timeouts", "integer", doc="scans cut by the YARA time budget (allowed)"),
            Field("unreadable", "integer", doc="files that could not be read (allowed)"),
            Field("scans_after_write", "integer", doc="files scanned after being written"),
            Field("overflows", "integer", doc="kernel queue overflows"),
        ),
        time_field="time",
    ),
    EventType(
        "isolation_tampered",
        GARRISON_SRC,
        "station",
        "While the station is isolated, the agent found its nftables table removed or changed "
        "by someone else, and put it back.",
        (
            Field("time", "timestamp", True, "when the agent found it"),
            Field("change", required=True, doc="removed (the table is gone) or changed"),
            Field("restored", "boolean", True, "the isolation table is back in force"),
            Field("error", doc="why it could not be put back"),
            Field("count", "integer", doc="times found tampered since the agent started"),
        ),
        severity=Severity.WARNING,
        time_field="time",
    ),
)
