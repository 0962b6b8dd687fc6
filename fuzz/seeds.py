#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into corpus/<target>/seed-*, and their
dictionaries into <target>.dict.

Both are checked in; run this again after changing an input format (see README.md).
Only the Python standard library is used: MessagePack is written by the small encoder below.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def msgpack(value):
    """MessagePack of None, bool, int, float, str, bytes, list and dict (in insertion order)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack(">b", value)
        if 0 <= value < 2**8:
            return b"\xcc" + struct.pack(">B", value)
        if 0 <= value < 2**16:
            return b"\xcd" + struct.pack(">H", value)
        if 0 <= value < 2**32:
            return b"\xce" + struct.pack(">I", value)
        if 0 <= value < 2**64:
            return b"\xcf" + struct.pack(">Q", value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        if len(data) < 256:
            return b"\xd9" + bytes([len(data)]) + data
        return b"\xda" + struct.pack(">H", len(data)) + data
    if isinstance(value, bytes):
        return b"\xc4" + bytes([len(value)]) + value
    if isinstance(value, list):
        assert len(value) < 16
        return bytes([0x90 | len(value)]) + b"".join(msgpack(v) for v in value)
    if isinstance(value, dict):
        assert len(value) < 16
        return bytes([0x80 | len(value)]) + b"".join(msgpack(k) + msgpack(v) for k, v in value.items())
    raise TypeError(type(value))


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# stored_events: see src/stored_events.rs for the layout.
# ---------------------------------------------------------------------------------------------

STATES = ["CREATED", "SCHEDULED", "CLAIMED", "RUNNING", "COMPLETED", "FAILED", "PAUSED", "RESUMING",
          "RESUME_SCHEDULED", "RESUME_CLAIMED", "CANCELLING", "CANCELLED"]
TYPES = ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED",
         "WORKFLOW_PAUSED", "WORKFLOW_RESUMING", "WORKFLOW_RESUMED", "WORKFLOW_RESUME_SCHEDULED",
         "WORKFLOW_RESUME_CLAIMED", "WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED", "TASK_STARTED", "TASK_COMPLETED",
         "TASK_FAILED", "TASK_CANCELLED", "TASK_PAUSED", "TASK_RESUMED", "TASK_PROGRESS", "TASK_RETRY_STARTED",
         "TASK_RETRY_COMPLETED", "TASK_RETRY_FAILED", "TASK_FALLBACK_STARTED", "TASK_FALLBACK_COMPLETED",
         "TASK_FALLBACK_FAILED", "TASK_ROLLBACK_STARTED", "TASK_ROLLBACK_COMPLETED", "TASK_ROLLBACK_FAILED"]


def null():
    return b"\x00"


def integer(i):
    return b"\x01" + struct.pack("<q", i)


def real(x):
    return b"\x02" + struct.pack("<d", x)


def text(s):
    data = s.encode() if isinstance(s, str) else s
    return b"\x03" + struct.pack("<H", len(data)) + data


def blob(b):
    return b"\x04" + struct.pack("<H", len(b)) + b


def known(k):
    return bytes([5, k])


def state(name):
    return known(STATES.index(name))


def kind(name):
    return known(TYPES.index(name))


def order_input(n):
    return known(4 * n)  # Order { id: n, items: ["a"] }


def source_workflow():
    return known(0)  # "{workflow}_{execution id}" of orders


def source_double(n):
    return known(1 + 4 * n)


def source_check(n):
    return known(2 + 4 * n)


def name(i):
    return known(i)  # 0 orders, 1 double, 2 check, 3 approval


def value_int(n):
    return known(1 + 8 * n)


def value_args(n):
    return known(2 + 8 * n)


VALUE_NIL, VALUE_ORDER, VALUE_ERROR, VALUE_PAUSED, VALUE_REFERENCE, VALUE_STRINGS = (
    known(0), known(3), known(4), known(5), known(6), known(7))
TIME = known(10)


def row(flags, st, inp, out=null(), worker=known(0), generation=known(0), parent=null()):
    return bytes([flags]) + st + inp + out + TIME + TIME + worker + generation + parent


def event(seq_index, ty, source, nm, value, time=TIME):
    # seq: the event's position (known value 0 gives index + 1).
    return known(0) + ty + source + nm + value + time


def orders_log(n, completed_value=None):
    events = [
        event(0, kind("WORKFLOW_STARTED"), source_workflow(), name(0), VALUE_ORDER),
        event(1, kind("TASK_STARTED"), source_double(n), name(1), value_args(n)),
        event(2, kind("TASK_COMPLETED"), source_double(n), name(1), completed_value or value_int(2 * n)),
    ]
    return b"".join(events)


def stored_events():
    t = "stored_events"
    # A run stopped after its first task: replay decodes the recorded 6 and runs `check`.
    write(t, "running-orders", row(0, state("RUNNING"), order_input(3)) + orders_log(3))
    # The recorded output of `double` is a string: replay must refuse it with an error.
    write(t, "bad-task-output", row(0, state("RUNNING"), order_input(3)) + orders_log(3, blob(msgpack("six"))))
    # A finished execution with its whole log.
    done = orders_log(3) + b"".join([
        event(3, kind("TASK_STARTED"), source_check(6), name(2), value_args(6)),
        event(4, kind("TASK_COMPLETED"), source_check(6), name(2), value_int(6)),
        event(5, kind("WORKFLOW_COMPLETED"), source_workflow(), name(0), VALUE_STRINGS),
    ])
    write(t, "completed-orders", row(0, state("COMPLETED"), order_input(3), out=VALUE_STRINGS) + done)
    # A failed execution: its structured error is stored in the row and in the last event.
    failed = orders_log(3) + event(3, kind("WORKFLOW_FAILED"), source_workflow(), name(0), VALUE_ERROR)
    write(t, "failed-orders", row(0, state("FAILED"), order_input(3), out=VALUE_ERROR) + failed)
    # A paused approval (flags 2): the pause's name and output are read from WORKFLOW_PAUSED.
    paused = b"".join([
        event(0, kind("WORKFLOW_STARTED"), known(3), name(3), known(2)),
        event(1, kind("TASK_PAUSED"), known(3), name(3), VALUE_NIL),
        event(2, kind("WORKFLOW_PAUSED"), known(3), name(3), VALUE_PAUSED),
    ])
    write(t, "paused-approval", row(2, state("PAUSED"), known(2)) + paused)
    # An output kept in output storage (a reference to a file that does not exist).
    write(t, "output-reference",
          row(1, state("COMPLETED"), known(1), out=VALUE_REFERENCE)
          + event(0, kind("WORKFLOW_COMPLETED"), source_workflow(), name(0), VALUE_REFERENCE))
    # Raw columns: text state, a hand-written input, an odd event of every column type.
    raw_input = msgpack({"id": 5, "items": ["x", "y"]})
    odd_value = msgpack({"nested": [1, -1, 300, -300, 70000, 2**40, -2**40, 1.5, True, None, b"\x00\x01"],
                         "s": "é"}) + b""
    write(t, "raw-columns",
          row(0, text("RUNNING"), blob(raw_input), out=null(), worker=text("w1"), generation=integer(2),
              parent=text("parent-1"))
          + integer(1) + text("WORKFLOW_STARTED") + text("orders_x") + text("orders") + blob(raw_input)
          + integer(1_700_000_000_000_000)
          + integer(2) + text(b"TASK_\xffSTARTED") + text("double_0") + text("double") + blob(odd_value)
          + real(1.5)
          + text("3") + text("TASK_COMPLETED") + blob(b"double_0") + integer(7) + blob(b"\xc1") + text("soon"))
    # Values of every MessagePack family, in a completed echo (flags 1).
    families = b"".join([
        b"\x93\x01\xa1a\xc0",  # fixarray
        b"\xde\x00\x01\xa1k\x01",  # map16
        b"\x82\x01\xa3one\xc3\xc2",  # map with an integer and a boolean key
        b"\xd4\x05\x01",  # fixext1
        b"\xc7\x03\x46\x01\x02\x03",  # ext8 of type 70 (an output reference), too short
        b"\xca\x3f\xc0\x00\x00",  # float32
        b"\xd0\x80\xd1\x80\x00\xd2\x80\x00\x00\x00\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int8..int64
        b"\xdd\x00\x00\x00\x01\xc0",  # array32
    ])
    write(t, "msgpack-families",
          row(1, state("COMPLETED"), known(1), out=blob(b"\x98" + families[:40]))
          + event(0, kind("WORKFLOW_COMPLETED"), source_workflow(), name(0), blob(families)))


# ---------------------------------------------------------------------------------------------
# http_bodies: "METHOD path\ncredentials\nbody".
# ---------------------------------------------------------------------------------------------

def request(method, path, credentials="none", body=b""):
    if isinstance(body, str):
        body = body.encode()
    return f"{method} {path}\n{credentials}\n".encode() + body


def wire_event(seq, ty, source, nm, value, time=1_700_000_000_000_000):
    return {"seq": seq, "type": ty, "source_id": source, "name": nm, "value": value, "time": time}


def checkpoint(writes, generation=1):
    return msgpack({"generation": generation, "writes": writes})


def http_bodies():
    t = "http_bodies"
    write(t, "run-echo-sync", request("POST", "/workflows/echo/run/sync?detailed=true", body=
          '{"a": [1, 2.5, "x", null, true, {"b": -7}], "big": 18446744073709551615}'))
    write(t, "run-orders-async", request("POST", "/workflows/orders/run/async", body='{"id": 7, "items": ["a", "b"]}'))
    write(t, "run-orders-stream", request("POST", "/workflows/orders/run/stream?detailed=1", body='{"id": -1, "items": []}'))
    write(t, "run-orders-wrong-input", request("POST", "/workflows/orders/run/sync", body='{"id": "seven"}'))
    write(t, "resume-sync", request("POST", "/workflows/approval/resume/{paused}/sync?detailed=True", body='"yes"'))
    write(t, "resume-async", request("POST", "/workflows/approval/resume/{paused}/async", body='"no"'))
    write(t, "resume-stream", request("POST", "/workflows/approval/resume/{paused}/stream", body='"later"'))
    write(t, "resume-wrong-input", request("POST", "/workflows/approval/resume/{paused}/sync", body="[1, 2]"))
    write(t, "status", request("GET", "/workflows/echo/status/{done}?detailed=true"))
    write(t, "cancel-paused", request("GET", "/workflows/approval/cancel/{paused}?mode=sync&detailed=true"))
    write(t, "cancel-finished", request("GET", "/workflows/echo/cancel/{done}?mode=async"))
    write(t, "catalog", request("GET", "/workflows"))
    write(t, "show", request("GET", "/workflows/orders"))
    write(t, "openapi", request("GET", "/openapi.json"))
    write(t, "register", request("POST", "/workers/register", "bootstrap", body=
          '{"name": "w2", "workflows": [{"name": "remote", "version": 2}], "resources": {"cpu_count": 2, '
          '"memory_total_bytes": 1024, "memory_available_bytes": 512, "gpus": [{"name": "g", "memory_total_bytes": 1}]}}'))
    write(t, "claim", request("POST", "/workers/fixed/claim/{scheduled}", "session"))
    write(t, "connect", request("GET", "/workers/fixed/connect", "session"))
    write(t, "progress", request("POST", "/workers/fixed/progress/{claimed}", "session", body=
          '{"task_id": "t_1", "name": "t", "value": {"done": 1, "of": 3}}'))
    source = "remote_x"
    write(t, "checkpoint-start", request("POST", "/workers/fixed/checkpoint/{claimed}", "session", body=checkpoint([
        {"op": "append", "event": wire_event(3, "WORKFLOW_STARTED", source, "remote", msgpack({"n": 1}))},
        {"op": "set_state", "state": "RUNNING", "output": None, "time": 1_700_000_000_000_001},
    ])))
    write(t, "checkpoint-complete", request("POST", "/workers/fixed/checkpoint/{claimed}", "session", body=checkpoint([
        {"op": "append", "event": wire_event(3, "WORKFLOW_STARTED", source, "remote", msgpack({"n": 1}))},
        {"op": "set_state", "state": "RUNNING", "output": None, "time": 1_700_000_000_000_001},
        {"op": "append", "event": wire_event(4, "TASK_STARTED", "double_1", "double", msgpack([1]))},
        {"op": "progress", "task_id": "double_1", "name": "double", "value": msgpack(0.5), "time": 1_700_000_000_000_002},
        {"op": "append", "event": wire_event(5, "TASK_COMPLETED", "double_1", "double", msgpack(2))},
        {"op": "append", "event": wire_event(6, "WORKFLOW_COMPLETED", source, "remote", msgpack({"n": 2}))},
        {"op": "set_state", "state": "COMPLETED", "output": msgpack({"n": 2}), "time": 1_700_000_000_000_003},
    ])))
    write(t, "checkpoint-refused", request("POST", "/workers/fixed/checkpoint/{claimed}", "session", body=checkpoint([
        {"op": "set_state", "state": "PAUSED", "output": None, "time": 1_700_000_000_000_001},
        {"op": "refused", "reason": "the input does not fit"},
    ])))
    write(t, "checkpoint-empty", request("POST", "/workers/fixed/checkpoint/{claimed}", "session", body=checkpoint([])))
    write(t, "checkpoint-stale", request("POST", "/workers/fixed/checkpoint/{claimed}", "session",
                                         body=checkpoint([], generation=2)))
    write(t, "secret-set", request("POST", "/admin/secrets", "admin", body='{"name": "API_KEY", "value": "s3cret"}'))
    write(t, "secret-list", request("GET", "/admin/secrets", "admin"))
    write(t, "secret-get", request("GET", "/admin/secrets/API_KEY", "admin"))
    write(t, "secret-remove", request("DELETE", "/admin/secrets/API%20KEY", "admin"))
    write(t, "unauthorized", request("GET", "/admin/secrets", "Bearer wrong"))


# ---------------------------------------------------------------------------------------------
# parse: environment lines, "%%", then a flux.toml.
# ---------------------------------------------------------------------------------------------

def parse():
    t = "parse"
    write(t, "full-file", """%%
[flux]
home = ".flux"
database_url = "sqlite://.flux/flux.db"
durability = "default"
server_host = "localhost"
server_port = 8000
max_body_bytes = 2097152
max_header_bytes = 65536
max_connections = 1024
request_timeout = "30s"

[flux.workers]
bootstrap_token = "boot"
server_url = "http://localhost:8000"
lease_timeout = "30s"
heartbeat_interval = "5s"

[flux.security]
encryption_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
admin_token = "admin"
""")
    write(t, "environment", """FLUX_HOME=data
FLUX_DATABASE_URL=sqlite:///tmp/flux-fuzz.db
FLUX_DURABILITY=Full
FLUX_SERVER_HOST=0.0.0.0
FLUX_SERVER_PORT=9000
FLUX_MAX_BODY_BYTES=1024
FLUX_MAX_HEADER_BYTES=8192
FLUX_MAX_CONNECTIONS=16
FLUX_REQUEST_TIMEOUT=2.5s
FLUX_SECURITY__ENCRYPTION_KEY=FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100
FLUX_SECURITY__ADMIN_TOKEN=admin
FLUX_WORKERS__BOOTSTRAP_TOKEN=boot
FLUX_WORKERS__SERVER_URL=http://example.test:8000
FLUX_WORKERS__LEASE_TIMEOUT=1m 30s
FLUX_WORKERS__HEARTBEAT_INTERVAL=250ms
%%
[flux]
home = "file-home"
durability = "batched"
""")
    write(t, "durations", """%%
[flux.workers]
lease_timeout = 12.5
heartbeat_interval = "1h 2m 3s 4ms 5us 6ns"
""")
    write(t, "memory-database", "FLUX_DATABASE_URL=sqlite::memory:\nFLUX_DURABILITY= normal \n")
    write(t, "words", "\n".join(["WORKFLOW_COMPLETED", "TASK_ROLLBACK_FAILED", "RESUME_SCHEDULED", "batched",
                                 "task_failed", "quantum", "say_hello_0123456789abcdef~2", "a~", "~12"]) + "\n")


# ---------------------------------------------------------------------------------------------
# Dictionaries: tokens libFuzzer splices into inputs (`-dict=<target>.dict`).
# ---------------------------------------------------------------------------------------------

def escape(data):
    out = ""
    for c in data:
        out += chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02X" % c
    return out


def mp_str(s):
    data = s.encode()
    return bytes([0xA0 | len(data)]) + data if len(data) < 32 else b"\xd9" + bytes([len(data)]) + data


def write_dictionary(target, entries):
    seen = []
    for entry in entries:
        entry = entry.encode() if isinstance(entry, str) else entry
        if entry not in seen:
            seen.append(entry)
    with open(os.path.join(HERE, target + ".dict"), "w") as f:
        f.write(f"# libFuzzer dictionary of the `{target}` target (written by seeds.py; see README.md).\n")
        for entry in seen:
            f.write(f'"{escape(entry)}"\n')


INTEGERS = [b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
            b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc0", b"\xc1"]


def dictionaries():
    keys = ["generation", "writes", "op", "append", "set_state", "progress", "refused", "event", "seq", "type",
            "source_id", "name", "value", "time", "state", "output", "reason", "task_id"]
    write_dictionary("http_bodies", [mp_str(k) for k in keys] + [mp_str(s) for s in STATES + TYPES] + [
        "GET ", "POST ", "DELETE ", "PUT ", "/workflows", "/workflows/echo", "/workflows/orders",
        "/workflows/approval", "/run/sync", "/run/async", "/run/stream", "/resume/", "/status/", "/cancel/",
        "?detailed=true", "?detailed=1", "&detailed=True", "?mode=sync", "?mode=async", "{paused}", "{done}",
        "{scheduled}", "{claimed}", "/workers/register", "/workers/fixed", "/claim/", "/checkpoint/", "/progress/",
        "/connect", "/admin/secrets", "/openapi.json", "/docs", "\nadmin\n", "\nbootstrap\n", "\nsession\n",
        "\nnone\n", "Bearer ", "%00", "%FF", "%2F", '"name"', '"value"', '"workflows"', '"version"', '"resources"',
        '"cpu_count"', '"memory_total_bytes"', '"memory_available_bytes"', '"gpus"', '"task_id"', '"id"', '"items"',
        "null", "true", "1e400", "-0", "18446744073709551616", "[[[[[[[[", b"\xc4", b"\xc5", b"\xc6", b"\xc7",
        b"\x01"] + INTEGERS)
    write_dictionary("stored_events", [mp_str(k) for k in ["kind", "message", "chain", "task_id", "name", "output"]]
                     + [mp_str(s) for s in STATES] + TYPES
                     + [mp_str(k) for k in ["task_failed", "task_timeout", "workflow_failed", "storage", "corrupt",
                                            "decode", "panic", "cancelled", "conflict", "unknown"]]
                     + [b"\xc7\x00\x46", b"\xc7\x44\x46\x92\xa4file\xd9\x40", b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
                        b"\xca\x7f\xc0\x00\x00", b"\x05\x00", b"\x05\x01", b"\x01\xff\xff\xff\xff\xff\xff\xff\x7f",
                        b"\x01\x00\x00\x00\x00\x00\x00\x00\x80", b"\x03\x00\x00", b"\x04\x00\x00"] + INTEGERS)
    write_dictionary("parse", [
        "FLUX_HOME=", "FLUX_DATABASE_URL=", "FLUX_DURABILITY=", "FLUX_SERVER_HOST=", "FLUX_SERVER_PORT=",
        "FLUX_MAX_BODY_BYTES=", "FLUX_MAX_HEADER_BYTES=", "FLUX_MAX_CONNECTIONS=",
        "FLUX_REQUEST_TIMEOUT=", "FLUX_SECURITY__ENCRYPTION_KEY=", "FLUX_SECURITY__ADMIN_TOKEN=",
        "FLUX_WORKERS__BOOTSTRAP_TOKEN=", "FLUX_WORKERS__SERVER_URL=", "FLUX_WORKERS__LEASE_TIMEOUT=",
        "FLUX_WORKERS__HEARTBEAT_INTERVAL=", "\n%%\n", "[flux]", "[flux.workers]", "[flux.security]", "home = ",
        "database_url = ", "durability = ", "server_host = ", "server_port = ", "max_body_bytes = ",
        "max_header_bytes = ", "max_connections = ", "request_timeout = ",
        "lease_timeout = ", "heartbeat_interval = ", "encryption_key = ", "admin_token = ", "bootstrap_token = ",
        "server_url = ", "sqlite://", "sqlite:///", "sqlite::memory:", "sqlite://:memory:", "default", "full",
        "batched", "normal", "ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y", "nsec", "usec", "msec", "sec",
        "min", "hour", "day", "week", "month", "year", "1e308", "nan", "inf", "-0.0", "18446744073709551616",
        "0x10", '"""', "\'\'\'", "= {", "= [", ".inf", "task_failed", "~", "~1"] + STATES + TYPES)


if __name__ == "__main__":
    stored_events()
    http_bodies()
    parse()
    dictionaries()
