"""The sensors' cost savings keep what they save on: many datagrams per read, one parse per
environment block, orjson bodies that read back as the json module's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from garrison.agent.sensors import mmsg, procconn, procinfo
from garrison.agent.spool import _ENCODER, encode_event

needs_mmsg = pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg in libc")


@needs_mmsg
def test_one_receive_takes_every_queued_datagram_in_order() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        receiver = mmsg.MultiReceiver(right.fileno(), slots=4, slot=16)
        assert receiver.receive(wait=False) == []  # nothing queued: at once, empty
        for k in range(6):
            left.send(bytes([65 + k]) * (k + 1))
        left.send(b"x" * 40)  # larger than a slot: cut to it
        got = receiver.receive(wait=False)
        data = [receiver.buffer.raw[o : o + n] for o, n in got]
        assert data == [b"A", b"BB", b"CCC", b"DDDD"]  # at most one per slot
        got = receiver.receive(wait=False)
        data = [receiver.buffer.raw[o : o + n] for o, n in got]
        assert data == [b"EEEEE", b"FFFFFF", b"x" * 16]


@needs_mmsg
def test_the_receive_waits_no_longer_than_the_sockets_timeout() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        timeout = (0).to_bytes(8, sys.byteorder) + (100_000).to_bytes(8, sys.byteorder)
        right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        receiver = mmsg.MultiReceiver(right.fileno(), slots=2, slot=8)
        started = time.monotonic()
        assert receiver.receive() == []
        assert 0.05 < time.monotonic() - started < 2.0


@pytest.mark.skipif(os.geteuid() != 0, reason="the process connector needs root")
def test_the_connector_reads_what_the_kernel_queued_in_one_call() -> None:
    conn = procconn.ProcConnector(1 << 20, timeout=0.5)
    try:
        for _ in range(5):
            subprocess.run(["/bin/true"], check=True)
        events = conn.recv()  # fork, exec, exit of five processes, all queued by now
        execs = [e for e in events if isinstance(e, procconn.Exec)]
        exits = [e for e in events if isinstance(e, procconn.Exit)]
        assert len(execs) >= 5
        assert len(exits) >= 5
        assert conn.lost == 0
        assert conn.overflows == 0
    finally:
        conn.close()


def test_one_environment_block_is_parsed_once_and_redacted() -> None:
    reader = procinfo.EnvironReader(procinfo.redactor(["*TOKEN*"]))
    env = {"PATH": "/usr/bin", "API_TOKEN": "s3cret", "LANG": "C"}
    children = [
        subprocess.Popen(["/bin/sleep", "30"], env=env),
        subprocess.Popen(["/bin/sleep", "30"], env=env),
        subprocess.Popen(["/bin/sleep", "30"], env={**env, "LANG": "fr"}),
    ]
    try:
        for child in children:  # Popen returns before the new image has its environment
            deadline = time.monotonic() + 5
            while not Path(f"/proc/{child.pid}/environ").read_bytes():
                if time.monotonic() > deadline:
                    raise AssertionError("the child never had its environment")
                time.sleep(0.005)
        first, second, third = (reader.read(child.pid) for child in children)
        assert first == {"PATH": "/usr/bin", "API_TOKEN": procinfo.REDACTED, "LANG": "C"}
        assert second is first  # the same block: the same parse
        assert third is not None
        assert third["LANG"] == "fr"
        assert reader.read(2**22 + 12345) is None  # no such process
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_orjson_bodies_read_back_as_the_json_modules() -> None:
    event = {
        "id": "abc",
        "type": "process_started",
        "time": 1_700_000_000,
        "data": {"pid": 42, "start_time": 1.5, "command_line": 'é "q"', "env": {"A": "1"}},
    }
    assert json.loads(encode_event(event)) == json.loads(_ENCODER.encode(event))
    # A path with bytes that are not UTF-8 (os.readlink gives lone surrogates): orjson
    # refuses it, the json module's escapes are kept.
    odd = {"data": {"file_path": os.fsdecode(b"/tmp/\xff")}}
    assert encode_event(odd) == _ENCODER.encode(odd)
    big = {"data": {"n": 2**70}}
    assert json.loads(encode_event(big)) == big
