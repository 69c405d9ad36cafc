"""RFC 3164 and RFC 5424 syslog lines to `SyslogMessage` and ECS; malformed lines raise `SyslogParseError`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from collectors.errors import CollectorError
from collectors.syslog_parse import StructuredElement, SyslogMessage, SyslogParseError, parse_syslog

RECEIVED = 1_795_000_000_000  # 2026-11-18T11:06:40Z


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0, *,
       tz: timezone = UTC) -> int:
    """Epoch milliseconds of a wall-clock time."""
    moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def parse(line: str | bytes, **kwargs: object) -> SyslogMessage:
    kwargs.setdefault("received_ms", RECEIVED)
    return parse_syslog(line, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- RFC 5424

RFC5424_EXAMPLES = [
    pytest.param(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed for lonvick on "
        "/dev/pts/8",
        SyslogMessage(ms(2003, 10, 11, 22, 14, 15, 3000), "'su root' failed for lonvick on /dev/pts/8",
                      hostname="mymachine.example.com", appname="su", msgid="ID47", facility=4, severity=2,
                      version=1),
        id="example-1-bom",
    ),
    pytest.param(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        SyslogMessage(ms(2003, 8, 24, 12, 14, 15), "%% It's time to make the do-nuts.", hostname="192.0.2.1",
                      appname="myproc", procid="8710", facility=20, severity=5, version=1),
        id="example-2-offset",
    ),
    pytest.param(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] \ufeffAn application event log entry...',
        SyslogMessage(ms(2003, 10, 11, 22, 14, 15, 3000), "An application event log entry...",
                      hostname="mymachine.example.com", appname="evntslog", msgid="ID47", facility=20, severity=5,
                      version=1, structured_data=(StructuredElement(
                          "exampleSDID@32473", (("iut", "3"), ("eventSource", "Application"), ("eventID", "1011"))),)),
        id="example-3-sd",
    ),
    pytest.param(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
        SyslogMessage(ms(2003, 10, 11, 22, 14, 15, 3000), "", hostname="mymachine.example.com", appname="evntslog",
                      msgid="ID47", facility=20, severity=5, version=1, structured_data=(
                          StructuredElement("exampleSDID@32473",
                                            (("iut", "3"), ("eventSource", "Application"), ("eventID", "1011"))),
                          StructuredElement("examplePriority@32473", (("class", "high"),)))),
        id="example-4-two-elements-no-msg",
    ),
]


@pytest.mark.parametrize(("line", "expected"), RFC5424_EXAMPLES)
def test_rfc5424_examples(line: str, expected: SyslogMessage) -> None:
    assert parse(line) == expected


def test_rfc5424_structured_data_escapes_and_repeated_params() -> None:
    line = r'<14>1 2026-11-20T01:00:00Z h app 1 - [a@1 q="say \"hi\"" b="back\\slash" c="x\]y" d="\n" e="" e="2"] m'
    message = parse(line)
    assert message.structured_data == (StructuredElement("a@1", (
        ("q", 'say "hi"'), ("b", "back\\slash"), ("c", "x]y"), ("d", "\\n"), ("e", ""), ("e", "2"))),)
    assert message.to_ecs()["log"]["syslog"]["structured_data"] == {
        "a@1": {"q": 'say "hi"', "b": "back\\slash", "c": "x]y", "d": "\\n", "e": ["", "2"]}}
    assert message.message == "m"


def test_rfc5424_nil_values_and_nil_timestamp_take_the_receive_time() -> None:
    message = parse("<14>1 - - - - - -", source_host="192.0.2.7")
    assert message == SyslogMessage(RECEIVED, "", facility=1, severity=6, version=1, source_host="192.0.2.7")
    assert message.host == "192.0.2.7"


def test_rfc5424_bytes_with_bom_and_invalid_utf8() -> None:
    message = parse(b"<38>1 2026-11-20T01:00:00+07:00 web01 sshd 42 - - \xef\xbb\xbfInvalid user \xff from 1.2.3.4")
    assert message.message == "Invalid user \\xff from 1.2.3.4"
    assert message.timestamp_ms == ms(2026, 11, 19, 18, 0, 0)
    assert message.pid == 42


def test_rfc5424_to_ecs() -> None:
    message = parse('<86>1 2026-11-20T01:00:00.250Z web01 sshd 2211 AUTH [meta@1 x="1"] Accepted password',
                    source_host="10.0.0.9")
    assert message.to_ecs() == {
        "@timestamp": "2026-11-20T01:00:00.250Z",
        "event": {"module": "system", "dataset": "system.syslog"},
        "message": "Accepted password",
        "log": {
            "syslog": {
                "facility": {"code": 10, "name": "authpriv"},
                "severity": {"code": 6, "name": "Informational"},
                "priority": 86,
                "version": "1",
                "hostname": "web01",
                "appname": "sshd",
                "procid": "2211",
                "msgid": "AUTH",
                "structured_data": {"meta@1": {"x": "1"}},
            },
            "source": {"address": "10.0.0.9"},
        },
        "host": {"hostname": "web01", "name": "web01"},
        "process": {"name": "sshd", "pid": 2211},
    }


# ------------------------------------------------------------------------------------------------- RFC 3164


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                     SyslogMessage(ms(2026, 10, 11, 22, 14, 15), "'su root' failed for lonvick on /dev/pts/8",
                                   hostname="mymachine", appname="su", facility=4, severity=2),
                     id="rfc3164-example-1"),
        pytest.param("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
                     SyslogMessage(ms(2026, 2, 5, 17, 32, 18), "Use the BFG!", hostname="10.0.0.99", facility=1,
                                   severity=5),
                     id="rfc3164-example-2-no-tag"),
        pytest.param("Nov 18 09:15:02 congdvc-web01 sshd[40211]: Failed password for root from 198.51.100.23 port "
                     "40022 ssh2\n",
                     SyslogMessage(ms(2026, 11, 18, 9, 15, 2),
                                   "Failed password for root from 198.51.100.23 port 40022 ssh2",
                                   hostname="congdvc-web01", appname="sshd", procid="40211"),
                     id="auth-log-no-pri"),
        pytest.param("Nov  3 07:00:01 congdvc-web01 sudo:   nguyenvana : TTY=pts/0 ; PWD=/home/nguyenvana ; "
                     "USER=root ; COMMAND=/usr/bin/systemctl restart nginx\r\n",
                     SyslogMessage(ms(2026, 11, 3, 7, 0, 1),
                                   "nguyenvana : TTY=pts/0 ; PWD=/home/nguyenvana ; USER=root ; "
                                   "COMMAND=/usr/bin/systemctl restart nginx",
                                   hostname="congdvc-web01", appname="sudo"),
                     id="sudo-spaces-after-tag"),
        pytest.param("2026-11-18T09:15:02.123456+07:00 congdvc-web01 sshd[7]: Connection closed by 10.0.0.1 port 22",
                     SyslogMessage(ms(2026, 11, 18, 2, 15, 2, 123000), "Connection closed by 10.0.0.1 port 22",
                                   hostname="congdvc-web01", appname="sshd", procid="7"),
                     id="rsyslog-high-precision"),
        pytest.param("<38>2026-11-18T09:15:02Z web01 systemd-logind[612]: New session 3 of user alice.",
                     SyslogMessage(ms(2026, 11, 18, 9, 15, 2), "New session 3 of user alice.", hostname="web01",
                                   appname="systemd-logind", procid="612", facility=4, severity=6),
                     id="rsyslog-iso-with-pri"),
        pytest.param("Nov 18 09:15:02 2001:db8::7 sshd[9]: Server listening on :: port 22.",
                     SyslogMessage(ms(2026, 11, 18, 9, 15, 2), "Server listening on :: port 22.",
                                   hostname="2001:db8::7", appname="sshd", procid="9"),
                     id="ipv6-hostname"),
        pytest.param("<13>Nov 18 09:15:02 logger[5]: no hostname here",
                     SyslogMessage(ms(2026, 11, 18, 9, 15, 2), "no hostname here", appname="logger", procid="5",
                                   facility=1, severity=5),
                     id="tag-without-hostname"),
        pytest.param("Nov 18 09:15:02 web01 postfix/smtpd[12]:connect from unknown[192.0.2.4]",
                     SyslogMessage(ms(2026, 11, 18, 9, 15, 2), "connect from unknown[192.0.2.4]", hostname="web01",
                                   appname="postfix/smtpd", procid="12"),
                     id="no-space-after-tag"),
        pytest.param("Nov 18 2025 09:15:02.5 router1 %SEC-6-IPACCESSLOGP: list 101 denied",
                     SyslogMessage(ms(2025, 11, 18, 9, 15, 2, 500000), "list 101 denied", hostname="router1",
                                   appname="%SEC-6-IPACCESSLOGP"),
                     id="year-and-fraction"),
        pytest.param("<13>hello from a printer",
                     SyslogMessage(RECEIVED, "hello from a printer", facility=1, severity=5),
                     id="pri-without-header"),
    ],
)
def test_rfc3164(line: str, expected: SyslogMessage) -> None:
    assert parse(line) == expected


def test_rfc3164_to_ecs_without_pri() -> None:
    message = parse("Nov 18 09:15:02 congdvc-web01 sshd[40211]: Accepted publickey for deploy from 10.20.0.8 port "
                    "40100 ssh2")
    assert message.to_ecs() == {
        "@timestamp": "2026-11-18T09:15:02.000Z",
        "event": {"module": "system", "dataset": "system.syslog"},
        "message": "Accepted publickey for deploy from 10.20.0.8 port 40100 ssh2",
        "log": {"syslog": {"hostname": "congdvc-web01", "appname": "sshd", "procid": "40211"}},
        "host": {"hostname": "congdvc-web01", "name": "congdvc-web01"},
        "process": {"name": "sshd", "pid": 40211},
    }
    assert message.priority is None


def test_hostname_falls_back_to_the_sender() -> None:
    message = parse("<13>Nov 18 09:15:02 logger: hi", source_host="192.0.2.9")
    assert (message.hostname, message.host) == (None, "192.0.2.9")
    assert message.to_ecs()["host"] == {"hostname": "192.0.2.9", "name": "192.0.2.9"}
    assert message.to_ecs()["log"]["source"] == {"address": "192.0.2.9"}


def test_zone_of_timestamps_without_one() -> None:
    hanoi = timezone(timedelta(hours=7))
    assert parse("Nov 18 09:15:02 h a: x", tz=hanoi).timestamp_ms == ms(2026, 11, 18, 2, 15, 2)
    assert parse("2026-11-18T09:15:02 h a: x", tz=hanoi).timestamp_ms == ms(2026, 11, 18, 2, 15, 2)
    assert parse("2026-11-18T09:15:02Z h a: x", tz=hanoi).timestamp_ms == ms(2026, 11, 18, 9, 15, 2)


# ----------------------------------------------------------------------------------------------------- years


@pytest.mark.parametrize(
    ("line", "received", "expected"),
    [
        pytest.param("Dec 31 23:59:58 h a: x", ms(2027, 1, 1, 0, 0, 5), ms(2026, 12, 31, 23, 59, 58),
                     id="december-read-in-january"),
        pytest.param("Jan  1 00:00:03 h a: x", ms(2026, 12, 31, 23, 59, 58), ms(2027, 1, 1, 0, 0, 3),
                     id="january-received-on-new-years-eve"),
        pytest.param("Dec 15 10:00:00 h a: x", ms(2026, 11, 20), ms(2026, 12, 15, 10, 0, 0),
                     id="within-a-month-ahead"),
        pytest.param("Dec 25 10:00:00 h a: x", ms(2026, 11, 20), ms(2025, 12, 25, 10, 0, 0),
                     id="more-than-a-month-ahead-is-last-year"),
        pytest.param("Feb 29 12:00:00 h a: x", ms(2027, 3, 1), ms(2024, 2, 29, 12, 0, 0),
                     id="feb-29-in-the-last-leap-year"),
    ],
)
def test_year_of_bsd_timestamps(line: str, received: int, expected: int) -> None:
    assert parse(line, received_ms=received).timestamp_ms == expected


def test_a_repeated_stamp_is_worked_out_again_when_anything_it_depends_on_changes() -> None:
    line = "Dec 15 10:00:00 h a: x"
    hanoi = timezone(timedelta(hours=7))
    nov20, nov1 = ms(2026, 11, 20), ms(2026, 11, 1)
    assert parse(line, received_ms=nov20).timestamp_ms == ms(2026, 12, 15, 10)  # within a month ahead
    assert parse(line, received_ms=nov20).timestamp_ms == ms(2026, 12, 15, 10)  # the same again
    assert parse(line, received_ms=nov20, tz=hanoi).timestamp_ms == ms(2026, 12, 15, 3)
    assert parse(line, received_ms=nov20, year_hint=2020).timestamp_ms == ms(2020, 12, 15, 10)
    assert parse(line, received_ms=nov1).timestamp_ms == ms(2025, 12, 15, 10)  # now over a month ahead
    assert parse("Dec 15 10:00:01 h a: x", received_ms=nov1).timestamp_ms == ms(2025, 12, 15, 10, 0, 1)
    with pytest.raises(SyslogParseError):  # an invalid stamp after a valid one still fails
        parse("Feb 30 10:00:00 h a: x", received_ms=nov1)
    with pytest.raises(SyslogParseError):  # and again
        parse("Feb 30 10:00:00 h a: x", received_ms=nov1)


def test_year_hint_wins() -> None:
    assert parse("Dec 31 23:59:58 h a: x", received_ms=ms(2027, 1, 1), year_hint=2019).timestamp_ms == \
        ms(2019, 12, 31, 23, 59, 58)
    with pytest.raises(SyslogParseError) as caught:
        parse("Feb 29 12:00:00 h a: x", year_hint=2026)
    assert caught.value.reason == "invalid timestamp 'Feb 29 12:00:00': day is out of range for month"


# ------------------------------------------------------------------------------------------------ malformed

SD_HEAD = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param("", "empty line", id="empty"),
        pytest.param(" \t\r\n", "empty line", id="blank"),
        pytest.param("garbage", "no syslog timestamp ('Mmm dd hh:mm:ss' or RFC 3339) at the start of 'garbage'",
                     id="garbage"),
        pytest.param('{"message": "json"}',
                     "no syslog timestamp ('Mmm dd hh:mm:ss' or RFC 3339) at the start of '{\"message\": \"json\"}'",
                     id="json"),
        pytest.param("<999>Nov 18 09:15:02 web01 sshd[1]: x", "invalid PRI <999>: 999 is out of range 0-191",
                     id="pri-out-of-range"),
        pytest.param("<1a>Nov 18 09:15:02 web01 sshd[1]: x",
                     "invalid PRI: expected '<' 1-3 digits '>', got '<1a>Nov 18 09:15:02 web01 sshd[1]: x'",
                     id="pri-not-a-number"),
        pytest.param("<1234>Nov 18", "invalid PRI: expected '<' 1-3 digits '>', got '<1234>Nov 18'",
                     id="pri-too-long"),
        pytest.param("<13>", "nothing after PRI", id="pri-only"),
        pytest.param("<34>2 2003-10-11T22:14:15.003Z h su - - - x",
                     "unsupported syslog version 2 (RFC 5424 defines version 1)", id="version-2"),
        pytest.param("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su",
                     "truncated RFC 5424 header: nothing after APP-NAME "
                     "(expected TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA)", id="truncated-header"),
        pytest.param("<34>1 2003-10-11T22:14:15.003Z  su - ID47 - x",
                     "empty HOSTNAME in RFC 5424 header (two spaces; '-' stands for no value)", id="empty-field"),
        pytest.param("<34>1 2003-10-11 h su - ID47 - x", "invalid RFC 5424 TIMESTAMP '2003-10-11'",
                     id="5424-date-only"),
        pytest.param("<34>1 2003-13-11T22:14:15Z h su - ID47 - x",
                     "invalid timestamp '2003-13-11T22:14:15Z': month must be in 1..12", id="5424-month-13"),
        pytest.param(SD_HEAD + '[exampleSDID@32473 iut="3" eventSource="Appli',
                     "truncated structured data: the value of 'eventSource' in [exampleSDID@32473 has no closing "
                     "quote", id="sd-truncated-value"),
        pytest.param(SD_HEAD + '[exampleSDID@32473 iut="3"',
                     "truncated structured data: element [exampleSDID@32473 is not closed with ']'",
                     id="sd-unclosed-element"),
        pytest.param(SD_HEAD + "[exampleSDID@32473 iut=", "truncated structured data: element [exampleSDID@32473 "
                     "ends after parameter name 'iut'", id="sd-truncated-after-name"),
        pytest.param(SD_HEAD + "[", "truncated structured data: missing SD-ID", id="sd-bracket-only"),
        pytest.param(SD_HEAD + "[exampleSDID@32473 iut=3]",
                     "structured data [exampleSDID@32473: expected '=\"' after parameter name 'iut'",
                     id="sd-unquoted-value"),
        pytest.param(SD_HEAD + '[ iut="3"]', "structured data: empty SD-ID before ' '", id="sd-empty-id"),
        pytest.param(SD_HEAD + "an event", "STRUCTURED-DATA must be '-' or start with '[', got 'an event'",
                     id="sd-missing"),
        pytest.param(SD_HEAD + '[a@1 x="1"]msg', "expected a space after STRUCTURED-DATA, got 'msg'",
                     id="sd-no-space-before-msg"),
        pytest.param("Feb 30 10:00:00 h a: x", "invalid timestamp 'Feb 30 10:00:00': day is out of range for month",
                     id="feb-30"),
        pytest.param("Foo 12 10:00:00 h a: x", "invalid month 'Foo' in timestamp 'Foo 12 10:00:00'",
                     id="bad-month"),
        pytest.param("Nov 18 25:00:00 h a: x", "invalid timestamp 'Nov 18 25:00:00': hour must be in 0..23",
                     id="hour-25"),
        pytest.param("2026-11-18T09:15:02+25:00 h a: x",
                     "invalid time zone offset '+25:00' in '2026-11-18T09:15:02+25:00'", id="bad-offset"),
        pytest.param("2026-11-18Tnoon h a: x", "invalid timestamp '2026-11-18Tnoon'", id="bad-iso"),
    ],
)
def test_malformed_lines_raise_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(SyslogParseError) as caught:
        parse(line)
    assert caught.value.reason == reason
    assert str(caught.value) == reason
    assert isinstance(caught.value, CollectorError)


def test_message_validates_facility_and_severity() -> None:
    with pytest.raises(ValueError, match="facility 24 is out of range 0-23"):
        SyslogMessage(0, "", facility=24, severity=0)
    with pytest.raises(ValueError, match="severity 8 is out of range 0-7"):
        SyslogMessage(0, "", facility=0, severity=8)
    assert SyslogMessage(0, "", facility=23, severity=7).priority == 191
