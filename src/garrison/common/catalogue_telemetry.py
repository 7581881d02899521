"""Endpoint telemetry of the Kaspersky EDR seed.

Every telemetry event carries the common fields (type, time, user, host, IP, OS); Linux and
Mac agents add the login details.  Hash fields take MD5 or SHA-256 as the seed says.
"""

from __future__ import annotations

from garrison.common.catalogue_sensor import GARRISON_SRC
from garrison.common.catalogue_types import EventType, Field
from garrison.common.vocabulary import Severity

SRC = "kaspersky-edr-data-between-components.txt"

COMMON = (
    Field("time", "timestamp", True, "event time"),
    Field("user", doc="user account the event was generated for", search="user"),
    Field("host", doc="name of the host where the event occurred", search="host"),
    Field("ip", "ip", doc="IP address of the host", search="ip"),
    Field("os", doc="type and version of the operating system"),
    Field("remote_host", doc="host used to log in remotely"),
    Field("login_user", doc="user name used to log in"),
    Field("user_group", doc="group of the user"),
    Field("file_owner", doc="user who created the file"),
    Field("file_group", doc="group whose users can modify or delete the file"),
    Field("file_permissions", doc="permissions of the file"),
    Field("inherited_permissions", doc="inherited privileges of the file"),
)


def _file(
    prefix: str = "", what: str = "the file", search: bool = True, process: bool = False
) -> tuple[Field, ...]:
    """``process``: the file is a process's image, so its name is searchable as process=."""
    return (
        Field(
            f"{prefix}file_name",
            doc=f"name of {what}",
            search="process" if process or prefix in ("process_", "parent_") else None,
        ),
        Field(f"{prefix}file_path", doc=f"path of {what}", search="path" if search else None),
        Field(f"{prefix}full_name", doc=f"full name of {what}", search="path" if search else None),
        Field(f"{prefix}md5", "md5", doc=f"MD5 of {what}", search="hash"),
        Field(f"{prefix}sha256", "sha256", doc=f"SHA-256 of {what}", search="hash"),
        Field(f"{prefix}size", "integer", doc=f"size of {what}"),
        Field(f"{prefix}created_at", "timestamp", doc=f"creation date of {what}"),
        Field(f"{prefix}modified_at", "timestamp", doc=f"modification date of {what}"),
    )


ACTOR = (
    Field("process_name", doc="file name of the acting process", search="process"),
    Field("process_md5", "md5", doc="MD5 of the process file", search="hash"),
    Field("process_sha256", "sha256", doc="SHA-256 of the process file", search="hash"),
)
PARENT = (
    Field("parent_path", doc="file path of the parent process", search="process"),
    Field("parent_unique_pid", doc="UniquePID of the parent", search="pupid"),
    Field("parent_md5", "md5", search="hash"),
    Field("parent_sha256", "sha256", search="hash"),
    Field("parent_command_line", doc="start options of the parent"),
)
# What the Linux agent adds to the seed's process events (the seed has no field for them).
LINUX_PROCESS = (
    Field("uid", "integer", doc="real user id (Linux)"),
    Field("gid", "integer", doc="real group id (Linux)"),
    Field("working_directory", doc="current directory at exec (Linux)"),
    Field("parent_pid", "integer", doc="process ID of the parent"),
    Field(
        "hash_status",
        doc="ok, pending (a large file: hashed in the background, the hashes come in later "
        "events of the same file), too_large, or unreadable",
    ),
    Field(
        "unavailable",
        doc="comma-separated fields that could not be read (the process was gone too soon)",
    ),
)
# What the Linux agent's prevention adds to the two blocking events (no seed field says why).
BLOCK_FIELDS = (
    Field("pid", "integer", doc="process ID of the process that was refused"),
    Field("block_reason", doc="blocklist (the signed block list) or threat (a detection)"),
    Field("block_rule", doc="the block list entry (hash:…, path:…, name:…) or threat name"),
)
# -- what the Linux file, driver and module sensors add (the seed has no field for them) --
_HASH_STATUS = "ok, pending (hashed in the background), too_large, or unreadable"
LINUX_FILE = (
    Field("pid", "integer", doc="process ID of the creating process (Linux: from fanotify)"),
    Field("unique_pid", doc="UniquePID of the creating process", search="upid"),
    Field("process_path", doc="file path of the creating process"),
    Field("owner_uid", "integer", doc="uid owning the file (Linux)"),
    Field("owner_gid", "integer", doc="gid owning the file (Linux)"),
    Field(
        "hash_status",
        doc=_HASH_STATUS + "; still_open: the file was still open for writing, no hash",
    ),
    Field("unavailable", doc="file: gone before it could be read (reported by name)"),
)
LINUX_DRIVER = (
    Field("module_name", doc="kernel module name (Linux, /proc/modules)"),
    Field("module_memory_size", "integer", doc="kernel memory the module takes (Linux)"),
    Field("seen_at_start", "boolean", doc="already loaded when the sensor started"),
    Field("hash_status", doc=_HASH_STATUS),
    Field("unavailable", doc="file_path: no module file found (built in, or removed)"),
)
LINUX_MODULE = (
    Field("pid", "integer", doc="process ID of the loading process"),
    Field("dll_hash_status", doc=_HASH_STATUS),
)
# -- end of the Linux file, driver and module sensors' fields --
# The listening-port events (Linux agent): the seed's port_listening fields, then what the
# Linux agent adds (the owning process, the protocol).
PORT = (
    *ACTOR,
    Field("port", "integer", True, "port number", search="port"),
    Field("adapter_ip", "ip", doc="adapter IP address"),
    Field("protocol", doc="tcp or udp (Linux)"),
    Field("ip_version", "integer", doc="4 or 6 (Linux)"),
    Field("pid", "integer", doc="process ID of the owning process"),
    Field("unique_pid", doc="UniquePID of the owning process", search="upid"),
    Field("process_path", doc="file path of the owning process", search="process"),
    Field("command_line", doc="command line of the owning process"),
    Field("uid", "integer", doc="user id owning the socket (Linux)"),
    Field("socket_inode", "integer", doc="the socket's inode (Linux)"),
    Field("unavailable", doc="comma-separated fields that could not be read"),
)
# What the Linux agent's authentication events add (sshd, su, sudo lines).
OS_LOG_LINUX = (
    Field("remote_port", "integer", doc="remote port (ssh)"),
    Field("auth_method", doc="password, publickey, keyboard-interactive… (ssh)"),
    Field("invalid_user", "boolean", doc="the user name does not exist (ssh)"),
    Field("target_user", doc="the user su or sudo runs as", search="user"),
    Field("tty", doc="terminal"),
    Field("command", doc="the command run (sudo)"),
    Field("working_directory", doc="working directory (sudo)"),
    Field("failure_reason", doc="why it failed (sudo)"),
    Field("pid", "integer", doc="process ID of the logging program"),
    Field("message", doc="the log line as written"),
)
# Login sessions (utmp): the common fields carry user, login_user and remote_host.
TERMINAL = (
    Field("tty", required=True, doc="terminal line (pts/0, tty1…)"),
    Field("pid", "integer", doc="process ID of the session leader"),
    Field("session_id", "integer", doc="session ID"),
    Field("start_time", "timestamp", doc="login time"),
    Field("remote", "boolean", doc="a remote login (remote host or address)"),
    Field("remote_ip", "ip", doc="remote IP address"),
)
OS_LOG_HEADER = (
    "ProviderName",
    "EventId",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreatedSystemTime",
    "EventRecordId",
    "CorellationActivityId",
    "ExecutionProcessID",
    "ThreadID",
    "Channel",
    "Computer",
)
OS_LOG_BODY = (
    "AccessList",
    "AccessFiles mask",
    "AccountExpires",
    "AllowedToDelegateTo",
    "Application",
    "AuditPolicyChanges",
    "AuthenticationPackageName",
    "CategoryId",
    "CommandLine",
    "DisplayName",
    "Dummy",
    "ElevatedToken",
    "EventCode",
    "EventProcessingFailure",
    "FailureReason",
    "FilterRTID",
    "HandleId",
    "HomeDirectory",
    "HomePath",
    "ImpersonationLevel",
    "IpAddress",
    "IpPort",
    "KeyLength",
    "LayerName",
    "LayerRTID",
    "LmPackageName",
    "LogonGuid",
    "LogonHours",
    "LogonProcessName",
    "LogonType",
    "MandatoryLabel",
    "MemberName",
    "MemberSid",
    "NewProcessId",
    "NewProcessName",
    "NewUacValue",
    "NewValue",
    "NewValueType",
    "ObjectName",
    "ObjectServer",
    "ObjectType",
    "ObjectValueName",
    "OldUacValue",
    "OldValue",
    "OldValueType",
    "OperationType",
    "PackageName",
    "ParentProcessName",
    "PasswordLastSet",
    "PrimaryGroupId",
    "PriviledgeList",
    "ProcessId",
    "ProcessName",
    "ProfileChanged",
    "ProfilePath",
    "Protocol",
    "PublisherId",
    "ResourceAttributes",
    "RestrictedAdminMode",
    "SamAccountName",
    "ScriptPath",
    "ServiceAccount",
    "ServiceFileName",
    "ServiceName",
    "ServiceStartType",
    "ServiceType",
    "SettingType",
    "SettingValue",
    "ShareLocalPath",
    "ShareName",
    "SidHistory",
    "SourceAddress",
    "SourcePort",
    "Status",
    "SubcategoryGuid",
    "SubcategoryId",
    "SubjectDomainName",
    "SubjectLogonId",
    "SubjectUserName",
    "SubjectUserSid",
    "SubStatus",
    "TargetDomainName",
    "TargetLinkedLogonId",
    "TargetLogonId",
    "TargetOutboundDomainName",
    "TargetOutboundUserName",
    "TargetUserName",
    "TargetUserSid",
    "TaskContent",
    "TaskName",
    "TokenElevationType",
    "TransmittedServices",
    "UserAccountControl",
    "UserParameters",
    "UserPrincipalName",
    "UserWorkstations",
    "VirtualAccount",
    "Workstation",
    "WorkstationName",
)


def _telemetry(
    name: str,
    doc: str,
    *fields: Field,
    severity: Severity = Severity.INFORMATION,
    eset_type: str | None = None,
    source: str = SRC,
) -> EventType:
    return EventType(
        name,
        source,
        "station",
        doc,
        (*COMMON, *fields),
        severity=severity,
        eset_type=eset_type,
        telemetry=True,
        time_field="time",
    )


TELEMETRY_EVENTS: tuple[EventType, ...] = (
    _telemetry(
        "file_created",
        "A file was created.",
        *ACTOR,
        *_file(),
        Field("file_type", doc="file type (Linux: file, directory, symlink, fifo, socket…)"),
        *LINUX_FILE,
    ),
    _telemetry(
        "registry_changed",
        "A registry value was changed.",
        Field("pid", "integer", doc="process ID"),
        *ACTOR,
        Field("key_path", required=True, doc="path to the registry key", search="path"),
        Field("value_name"),
        Field("value_data"),
        Field("value_type"),
        Field("previous_key_path"),
        Field("previous_value_data"),
        Field("previous_value_type"),
    ),
    _telemetry("driver_loaded", "A driver was loaded.", *_file(), *LINUX_DRIVER),
    _telemetry("port_listening", "A process opened a listening port.", *PORT),
    # Garrison's (Linux agent): the seed has no event for a port that stops listening.
    _telemetry(
        "port_closed", "A listening port was closed (Linux agent).", *PORT, source=GARRISON_SRC
    ),
    _telemetry(
        "os_log_event",
        "An event of the operating system log.",
        Field("event_id", doc="event ID"),
        Field("channel", doc="channel / log name"),
        Field("record_id", doc="event ID in the log"),
        Field("provider", doc="provider name"),
        Field("auth_subtype", doc="authentication event subtype"),
        Field("domain", doc="domain name"),
        Field("remote_ip", "ip", doc="remote IP address"),
        Field("event_type", doc="event type (Linux, Mac)"),
        Field("result", doc="result of the operation (Linux, Mac)"),
        *OS_LOG_LINUX,
        *PARENT,
        Field("header", "object", doc="event header fields", keys=OS_LOG_HEADER),
        Field("body", "object", doc="event body fields", keys=OS_LOG_BODY),
    ),
    _telemetry(
        "process_started",
        "A process started.",
        *_file(what="the process file", process=True),
        Field("signer", doc="organization that issued the file's certificate"),
        Field("signature_valid", "boolean", doc="digital signature verification result"),
        Field("unique_pid", required=True, doc="UniquePID", search="upid"),
        Field("pid", "integer"),
        Field("command_line", doc="process start options"),
        Field("process_type", doc="process type"),
        Field("environment", "object", doc="environment variables"),
        Field("start_time", "timestamp", doc="process start time"),
        *PARENT,
        *LINUX_PROCESS,
        Field(
            "seen_at_start",
            "boolean",
            doc="already running when the agent started, not reported before (Linux): "
            "started while the agent was down; time is when it was found",
        ),
    ),
    _telemetry(
        "process_stopped",
        "A process stopped.",
        *_file(what="the process file", process=True),
        Field("unique_pid", required=True, doc="UniquePID", search="upid"),
        Field("pid", "integer"),
        Field("command_line", doc="process start options"),
        Field("end_time", "timestamp", doc="process end time"),
        Field("start_time", "timestamp", doc="process start time"),
        *PARENT,
        *LINUX_PROCESS,
        Field("exit_code", "integer", doc="exit status (Linux), when the process exited"),
        Field("exit_signal", "integer", doc="signal that ended the process (Linux), if any"),
    ),
    _telemetry(
        "module_loaded",
        "A process loaded a module (DLL).",
        Field("unique_pid", doc="UniquePID of the loading process", search="upid"),
        *_file(prefix="process_", what="the loading process file"),
        Field("dll_name", required=True),
        Field("dll_path", search="path"),
        Field("dll_full_name", search="path"),
        Field("dll_md5", "md5", search="hash"),
        Field("dll_sha256", "sha256", search="hash"),
        Field("dll_size", "integer"),
        Field("dll_created_at", "timestamp"),
        Field("dll_modified_at", "timestamp"),
        Field("dll_signer"),
        Field("dll_signature_valid", "boolean"),
        *LINUX_MODULE,
    ),
    _telemetry(
        "process_start_blocked",
        "A process start was blocked.",
        *_file(),
        Field("command_line", doc="command-line parameters"),
        *BLOCK_FIELDS,
        severity=Severity.WARNING,
        eset_type="BlockedFiles_Event",
    ),
    _telemetry(
        "file_open_blocked",
        "Opening a file was blocked.",
        *_file(),
        Field("checksum_type", "integer", doc="0 MD5, otherwise SHA-256"),
        *_file(prefix="exe_", what="the executable", search=False),
        Field("parent_file_name", search="process"),
        Field("parent_file_path"),
        Field("parent_full_name"),
        Field("parent_md5", "md5", search="hash"),
        Field("parent_sha256", "sha256", search="hash"),
        Field("parent_pid", "integer"),
        Field("parent_unique_pid", search="pupid"),
        *BLOCK_FIELDS,
        severity=Severity.WARNING,
        eset_type="BlockedFiles_Event",
    ),
    _telemetry(
        "detection",
        "The endpoint protection detected an object.",
        Field("scan_result", doc="scan result"),
        Field("object_name", required=True, doc="name of the detected object", search="path"),
        Field("record_id", doc="ID of the record in the application databases"),
        Field("db_release_time", "timestamp", doc="release time of the databases"),
        Field("processing_mode", doc="object processing mode"),
        Field("category", doc="category of the detected object, e.g. the virus name"),
        Field("md5", "md5", search="hash"),
        Field("sha256", "sha256", search="hash"),
        Field("unique_pid", search="upid"),
        Field("pid", "integer"),
        Field("command_line", doc="process start command line"),
        Field("error_reason", doc="why processing the object failed"),
        Field("amsi_content", doc="script content scanned with AMSI"),
        severity=Severity.CRITICAL,
        eset_type="Threat_Event",
    ),
    # The seed's "information about terminal sessions" (Linux agent, from utmp).
    _telemetry(
        "terminal_session_started", "A login session started.", *TERMINAL, source=GARRISON_SRC
    ),
    _telemetry(
        "terminal_session_ended",
        "A login session ended.",
        *TERMINAL,
        Field("end_time", "timestamp", doc="logout time"),
        source=GARRISON_SRC,
    ),
    _telemetry(
        "amsi_scan",
        "A script was scanned through AMSI.",
        Field("content", required=True, doc="contents of the scanned script"),
    ),
)


# -- what the Linux agent's sensors never fill, and why ---------------------------------------
# Documented per event in docs/events.md (catalogue_doc) rather than silently absent; every
# other declared field is filled whenever the sensor could read it (``unavailable`` names
# what it could not).
_SIGNATURE = "not applicable on Linux: ELF files carry no Authenticode signature"
_ACL = "not applicable on Linux: no inherited ACLs (file_permissions has the mode bits)"
_HOST_IP = "not sent: the server has the station's address (its station record; exports add it)"
_NOT_A_FILE = "not sent: the event is not about a file's ownership (see file_created)"
_IMAGE = "not sent: the image file's owner and mode (user, uid and gid are the process's)"
_REMOTE = "not in this event: a remote login's host is in terminal_session_* and os_log_event"
_LOGIN = "not read for this event (user has the account)"
_COMMON_NOT_FILLED = {"ip": _HOST_IP, "inherited_permissions": _ACL}
_NOT_FILE_OWNER = {"file_owner": _NOT_A_FILE, "file_group": _NOT_A_FILE}
_NOT_FILE = {**_NOT_FILE_OWNER, "file_permissions": _NOT_A_FILE}
_PROCESS = {
    **_COMMON_NOT_FILLED,
    "remote_host": _REMOTE,
    "file_owner": _IMAGE,
    "file_group": _IMAGE,
    "file_permissions": _IMAGE,
}
_PORT = {**_COMMON_NOT_FILLED, **_NOT_FILE, "remote_host": _REMOTE, "login_user": _LOGIN}
_PORT["user_group"] = _LOGIN
_TERMINAL = {**_COMMON_NOT_FILLED, **_NOT_FILE, "user_group": _LOGIN}
LINUX_NOT_FILLED: dict[str, dict[str, str]] = {
    "process_started": {
        **_PROCESS,
        "signer": _SIGNATURE,
        "signature_valid": _SIGNATURE,
        "process_type": "not applicable on Linux: the Windows process type (service, GUI, "
        "console) has no equivalent",
    },
    "process_stopped": _PROCESS,
    "file_created": {
        **_COMMON_NOT_FILLED,
        "remote_host": _REMOTE,
        "user_group": _LOGIN,
    },
    "port_listening": _PORT,
    "port_closed": _PORT,
    "driver_loaded": {
        **_COMMON_NOT_FILLED,
        **_NOT_FILE,
        "remote_host": _REMOTE,
        "user": "not known: /proc/modules does not say who loaded the module",
        "login_user": "not known: /proc/modules does not say who loaded the module",
        "user_group": "not known: /proc/modules does not say who loaded the module",
    },
    "module_loaded": {
        **_PROCESS,
        "login_user": _LOGIN,
        "user_group": _LOGIN,
        "dll_signer": _SIGNATURE,
        "dll_signature_valid": _SIGNATURE,
    },
    "os_log_event": {
        **_NOT_FILE,
        "inherited_permissions": _ACL,
        "remote_host": "not sent: the remote address is in remote_ip",
        "login_user": _LOGIN,
        "user_group": _LOGIN,
        "event_id": "not applicable on Linux: syslog and journald records have no Windows "
        "event ID (record_id has the journal cursor or the line's place in the file)",
        **dict.fromkeys(
            ("parent_path", "parent_unique_pid", "parent_md5", "parent_sha256"),
            "not read: the logging daemon's parent (pid is the daemon's)",
        ),
        "parent_command_line": "not read: the logging daemon's parent (pid is the daemon's)",
    },
    "terminal_session_started": _TERMINAL,
    "terminal_session_ended": _TERMINAL,
}
