"""Real ESET PROTECT output, to check each ported parser against before Garrison's.

The envelopes are those issue 19 quotes from real ESET servers; the JSON bodies are ESET's
own sample events as Elastic's ``eset_protect`` integration tests them
(``data_stream/event/_dev/test/pipeline/test-event.log``), one per type; the LEEF and CEF
lines are ESET's documented samples (help.eset.com "Events exported to LEEF/CEF format"),
with LEEF's tab delimiters, which the HTML page shows as spaces, restored.  Two edits, both
said here: the firewall event carries ``action`` and ``handled`` (Elastic's sample predates
them; ESET's own LEEF sample has ``action=Blocked`` and ``handled=1``), and the blocked
file's ``object_uri`` is shortened.
"""

from __future__ import annotations

BSD_HEADER = "<10>Mar 17 09:42:53 ESMC-linux ERAServer[12412]: "
RFC5424_HEADER = "<14>1 2026-02-27T16:25:37.704Z HOST ERAServer 3432 - - "
BOM = "\ufeff"
HEARTBEAT = "<190>Aug 12 09:58:13 - ERAServer[16238]: HEARTBEAT"

JSON = {
    "Threat_Event": '{"event_type":"Threat_Event","ipv4":"192.168.30.30","hostname":"030-mg","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"1361a9f6-1d45-4561-b33a-b5d6c62c71e0","occured":"21-Jun-2021 09:46:15","severity":"Warning","threat_type":"Trojan","threat_name":"LNK/Agent.BZ","scanner_id":"Real-time file system protection","scan_id":"virlog.dat","engine_version":"28873 (20240310)","object_type":"File","object_uri":"file:///E:/Removable Drive (1GB).lnk","action_taken":"Cleaned by deleting","threat_handled":true,"need_restart":false,"username":"machine5\\\\Administrator","processname":"C:\\\\Windows\\\\explorer.exe","circumstances":"Event occurred during an attempt to access the file.","firstseen":"28-Jul-2021 07:20:55","hash":"1A45EBA0F9EF909E6F3C87B0D5CEDAD27BDB6CF2"}',  # noqa: E501
    "FirewallAggregated_Event": '{"event_type":"FirewallAggregated_Event","ipv4":"192.168.30.30","hostname":"w16test","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"d9477661-8fa4-4144-b8d4-e37b983bcd69","occured":"21-Jun-2021 13:10:04","severity":"Warning","event":"Security vulnerability exploitation attempt","source_address":"127.0.0.1","source_address_type":"IPv4","source_port":54568,"target_address":"127.0.0.1","target_address_type":"IPv4","target_port":80,"protocol":"TCP","account":"NT AUTHORITY\\\\NETWORK SERVICE","process_name":"/Applications/Safari.app","inbound":true,"threat_name":"CVE-2017-5638.Struts2","aggregate_count":1,"action":"Blocked","handled":true}',  # noqa: E501
    "HipsAggregated_Event": '{"event_type":"HipsAggregated_Event","ipv4":"192.168.30.181","hostname":"test-w10-uefi","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"5dbe31ae-4ca7-4e8c-972f-15c197d12474","occured":"21-Jun-2021 11:53:21","severity":"Critical","application":"C:\\\\Users\\\\Administrator\\\\Desktop\\\\es_pack_to_test\\\\test\\\\java.exe","operation":"Attempt to run a suspicious object","target":"C:\\\\Users\\\\Administrator\\\\Desktop\\\\es_pack_to_test\\\\test\\\\trojan.exe","action":"blocked","handled":true,"rule_id":"Suspicious attempt to launch an application","aggregate_count":2}',  # noqa: E501
    "Audit_Event": '{"event_type":"Audit_Event","ipv4":"192.168.30.30","hostname":"030-MG","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"72cdf05f-f9c8-49cc-863d-c6b3059a9e8e","occured":"21-Jun-2021 09:42:00","severity":"Information","domain":"Native user","action":"Login attempt","target":"Administrator","detail":"Authenticating native user \'Administrator\'.","user":"","result":"Success"}',  # noqa: E501
    "FilteredWebsites_Event": '{"event_type":"FilteredWebsites_Event","ipv4":"192.168.30.30","hostname":"win-test","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"d9477661-8fa4-4144-b8d4-e37b983bcd69","occured":"21-Jun-2021 03:56:20","severity":"Warning","event":"An attempt to connect to URL","target_address":"89.160.20.128","target_address_type":"IPv4","scanner_id":"HTTP filter","action_taken":"blocked","object_uri":"https://test.com","hash":"ABCDAA625E6961037B8904E113FD0C232A7D0EDC","username":"WIN-TEST\\\\Administrator","processname":"/browser/brwser.exe","rule_id":"Blocked by PUA blacklist"}',  # noqa: E501
    "EnterpriseInspectorAlert_Event": '{"event_type":"EnterpriseInspectorAlert_Event","ipv4":"192.168.30.30","hostname":"shdsolec.vddjc","group_name":"All/Lost & found","os_name":"Microsoft Windows 11 Pro","group_description":"Lost & found static group","source_uuid":"csd77ad2-2453-42f4-80a4-d86dfa9d0543","occured":"13-Jun-2021 07:45:00","severity":"Warning","processname":"example.exe","username":"Administrator","rulename":"RuleName2","count":158,"eiconsolelink":"http://eiserver.tmp/linkToConsole","computer_severity_score":"1","severity_score":"1"}',  # noqa: E501
    "BlockedFiles_Event": '{"event_type":"BlockedFiles_Event","ipv4":"175.16.199.1","ipv6":"","hostname":"testingpc","source_uuid":"cabcdef-1234-4311-1234-3dabcdefgh78","os_name":"Microsoft Windows 11 Pro","occured":"27-Oct-2023 12:02:36","group_name":"All","group_description":"","severity":"Warning","processname":"","username":"","resolved":"","flagged":"","object_uri":"file:///C:/Users/Example/AppData/Local/Temp/x.zip","action":"Blocked and cleaned","firstseen":"20231026T132530","cause":"Blocked by Administrator","description":"ESET Inspect","handled":""}',  # noqa: E501
    "ESET Inspect Alert": '{"event_type":"ESET Inspect Alert","ipv4":"10.0.0.47","ipv6":"","hostname":"wsu-pf3r12l5","source_uuid":"08764ed7-7480-482a-8eaa-da8e2084fe22","os_name":"Microsoft Windows 11 Business","occured":"25-Feb-2025 13:57:46","group_name":"All","group_description":"","severity":"Information","processname":"%SYSTEM%\\\\taskkill.exe","username":"nt authority\\\\local service","rulename":"Processes killing from command line [B0401]","count":"1","eiconsolelink":"https://inspect.eset.com:443/console/detection/993374","resolved":"","hash":"912DC85EAFCE7FC20247715ADC5ACB4C43555BC8","computer_severity_score":"20","severity_score":"34"}',  # noqa: E501
}
# The seven types Garrison exports (ESET Inspect Alert is the eighth name of the seventh).
SEVEN = tuple(t for t in JSON if t != "ESET Inspect Alert")


def bsd(body: str) -> str:
    return BSD_HEADER + body


def rfc5424(body: str, bom: bool = False) -> str:
    return RFC5424_HEADER + (BOM if bom else "") + body


def lines(kind: str) -> dict[str, str]:
    """ESET's line for each type, in envelope ``kind`` (rfc3164 or rfc5424)."""
    wrap = bsd if kind == "rfc3164" else rfc5424
    return {name: wrap(body) for name, body in JSON.items()}


TAB = "\t"
LEEF = {
    "Threat_Event": TAB.join(
        [
            "LEEF:1.0|ESET|RemoteAdministrator|10.1.0.0|Threat Event|cat=ESET Threat Event",
            "sev=3",
            "devTime=Jan 18 2022 14:46:00 GMT",
            "devTimeFormat=MMM dd yyyy HH:mm:ss z",
            "src=",
            "deviceName=mydevice",
            "deviceUuid=fb6c25d2-116e-4d0f-a159-695bb16e7b78",
            "deviceGroupName=All",
            "threatType=Virus",
            "threatName=W97M/Marker.KS",
            "scannerID=On-demand scanner",
            "engineVersion=18563",
            "objectUri=mekpoimnjoheutqgzz1o",
            "objectType=File",
            "threatHandled=true",
            "needRestart=false",
            "detectionUuid=90a37fe6-f4f4-4ea6-a265-93dfd9823b12",
            "accountName=Feri",
            "hash=AB37916418A79BF117E9F7D91D35CD0ABFD78E4B",
        ]
    ),
    "FirewallAggregated_Event": TAB.join(
        [
            "LEEF:1.0|ESET|RemoteAdministrator|10.1.0.0|Firewall Event|cat=ESET Firewall Event",
            "sev=5",
            "devTime=Dec 11 2022 05:39:49 GMT",
            "devTimeFormat=MMM dd yyyy HH:mm:ss z",
            "src=",
            "deviceName=mydevice",
            "deviceUuid=fb6c25d2-116e-4d0f-a159-695bb16e7b78",
            "deviceGroupName=All",
            "action=Blocked",
            "eventDesc=TCP Port Scanning attack",
            "dst=192.168.27.20",
            "src=192.168.26.208",
            "inbound=true",
            "dstPort=2508",
            "srcPort=49192",
            "targetAddressType=IPv4",
            "sourceAddressType=IPv4",
            "proto=TCP",
            "threatName=Win32/Botnet.generic",
            "aggregateCount=1",
            "handled=1",
            "detectionUuid=ed8232d9-ddff-411a-ad48-efdaea13a0e6",
        ]
    ),
}
CEF = (
    "CEF:0|ESET|Protect|10.0.5.1|209|Detected port scanning attack|5|cat=ESET Firewall Event "
    "dvc=10.0.12.59 c6a1=2001:0db8:85a3:0000:0000:8a2e:0370:7334 c6a1Label=Device IPv6 Address "
    "dvchost=COMPUTER02 deviceExternalId=39e0feee-45e2-476a-b17f-169b592c3645 "
    "rt=Jun 04 2017 14:10:00 ESETProtectDeviceGroupName=All/Lost & found "
    "ESETProtectDeviceOsName=Microsoft Windows 11 Pro"
)
