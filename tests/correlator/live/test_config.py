"""`socctl run` configuration: defaults, every setting, and errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.live.config import (
    Listen,
    RunConfig,
    RunConfigError,
    Samples,
    Uploads,
    load_run_config,
    parse_run_config,
)

FULL = """
store: sqlite:///tmp/x.db
rules: [/etc/socctl/rules]
assets: assets.yml
intel: iocs/
suppress: false
lateness: 30s
state_dir: /var/lib/socctl/state
snapshot_every: 5m
syslog: {host: 0.0.0.0, udp: null, tcp: 6514}
metrics: {port: null}
queue: 500
batch: 50
batch_max: 120
batch_wait: 50ms
store_events: false
replay: [a.log, b.json]
tail: [/var/log/auth.log, {path: "/var/log/nginx/*.log", format: web-access, server: nginx}]
tail_poll: 1s
"""


def test_defaults_without_a_file() -> None:
    config = load_run_config(None)
    assert config.syslog == Listen(host="127.0.0.1", udp=5514, tcp=5514)
    assert config.metrics == Listen(host="127.0.0.1", port=9464)
    assert (config.queue, config.batch, config.batch_wait_ms, config.snapshot_every_ms) == (10_000, 1_000, 200, 60_000)
    assert (config.batch_max, config.largest_batch) == (None, 4_000)
    assert config.store_events is True
    assert config.runtime.suppress is True


def test_every_setting() -> None:
    config = parse_run_config(FULL, "run.yml")
    assert config.store == "sqlite:///tmp/x.db"
    assert config.rules == (Path("/etc/socctl/rules"),)
    assert config.runtime.assets == Path("assets.yml")
    assert config.runtime.intel == (Path("iocs/"),)
    assert config.runtime.suppress is False
    assert config.runtime.lateness_ms == 30_000
    assert config.state_dir == Path("/var/lib/socctl/state")
    assert config.snapshot_every_ms == 300_000
    assert config.syslog == Listen(host="0.0.0.0", udp=None, tcp=6514)
    assert config.metrics.port is None
    assert (config.queue, config.batch, config.batch_wait_ms, config.store_events) == (500, 50, 50, False)
    assert (config.batch_max, config.largest_batch) == (120, 120)
    assert config.replay == (Path("a.log"), Path("b.json"))
    assert [(t.path, t.format, t.server) for t in config.tail] == [
        ("/var/log/auth.log", None, None), ("/var/log/nginx/*.log", "web-access", "nginx")]
    assert config.tail_poll_ms == 1_000
    assert isinstance(config, RunConfig)


@pytest.mark.parametrize(("text", "message"), [
    ("stroe: x\n", "run.yml:1: stroe: unknown setting (expected one of store, "),
    ("queue: 0\n", "run.yml:1: queue: expected a whole number >= 1, not 0"),
    ("lateness: soon\n", "run.yml:1: lateness: invalid duration 'soon'"),
    ("syslog: {udp: 70000}\n", "run.yml:1: syslog.udp: expected a port 0-65535 or null, not 70000"),
    ("syslog: {dtls: 1}\n", "run.yml:1: syslog.dtls: unknown setting (expected one of host, udp, tcp, tls, cert"),
    ("syslog: {tls: 6514}\n", "run.yml:1: syslog.tls: a TLS port needs cert and key (PEM files)"),
    ("syslog: {cert: c.pem}\n", "run.yml:1: syslog.tls: cert, key and client_ca are for a TLS port"),
    ("store_events: yes please\n", "run.yml:1: store_events: expected true or false, not 'yes please'"),
    ("rules: 5\n", "run.yml:1: rules: expected a path or a list of paths, not 5"),
    ("- a\n- b\n", "run.yml:1: expected a mapping of settings"),
    ("tail: [{file: x}]\n", "run.yml:1: tail[0]: expected a path or {path, format, server}"),
    ("store: [\n", "run.yml:2: invalid YAML"),
    ("batch: 10\nbatch_max: 9\n", "run.yml:2: batch_max: must be at least batch (10), not 9"),
    ("batch_max: 0\n", "run.yml:1: batch_max: expected a whole number >= 1, not 0"),
    ("timezone: Mars/Olympus\n", "run.yml:1: timezone: unknown time zone 'Mars/Olympus' (an IANA name such as "
                                 "Asia/Ho_Chi_Minh or UTC)"),
], ids=["unknown", "queue", "duration", "port", "listen-key", "tls-port", "tls-files", "flag", "paths",
        "not-a-mapping", "tail", "yaml", "batch-max", "batch-max-zero", "timezone"])
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(RunConfigError) as caught:
        parse_run_config(text, "run.yml")
    assert str(caught.value).startswith(message)


def test_timezone() -> None:
    assert parse_run_config("", "run.yml").timezone == "UTC"
    assert parse_run_config("timezone: Asia/Ho_Chi_Minh\n", "run.yml").timezone == "Asia/Ho_Chi_Minh"


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RunConfigError, match="cannot read"):
        load_run_config(tmp_path / "missing.yml")


def test_samples_and_uploads() -> None:
    config = parse_run_config("samples: {paths: [/var/quarantine], max_bytes: 4MiB, poll: 500ms}\n"
                              "uploads: {enabled: false, max_bytes: 1000}\n", "run.yml", environ={})
    assert config.samples == Samples((Path("/var/quarantine"),), 4 << 20, 500)
    assert config.uploads == Uploads(False, 1000)
    defaults = parse_run_config("", "run.yml", environ={})
    assert defaults.samples.paths == ()
    assert defaults.uploads == Uploads(True, 32 << 20, 365 * 86_400_000)
    assert parse_run_config("uploads: {keep: 30d}\n", "run.yml", environ={}).uploads.keep_ms == 30 * 86_400_000
    assert parse_run_config("uploads: {keep: null}\n", "run.yml", environ={}).uploads.keep_ms is None


@pytest.mark.parametrize(("text", "message"), [
    ("samples: {paths: []}\n", "run.yml:1: samples.paths: expected at least one directory to watch"),
    ("samples: {paths: [a], max_bytes: lots}\n", "run.yml:1: samples.max_bytes: expected a size such as 32MiB"),
    ("uploads: {enabled: true, limit: 5}\n", "run.yml:1: uploads.limit: unknown setting (expected one of enabled"),
    ("uploads: yes\n", "run.yml:1: uploads: expected a mapping of enabled, max_bytes, keep, not True"),
    ("uploads: {keep: soon}\n", "run.yml:1: uploads.keep: "),
], ids=["no-paths", "size", "unknown", "not-a-mapping", "keep"])
def test_samples_and_uploads_errors(text: str, message: str) -> None:
    with pytest.raises(RunConfigError) as caught:
        parse_run_config(text, "run.yml", environ={})
    assert str(caught.value).startswith(message)


def test_environment_overrides_win_over_the_file() -> None:
    environ = {"SOCCTL_RUN_SYSLOG": "{host: 0.0.0.0, udp: 514, tcp: null}", "SOCCTL_RUN_QUEUE": "50000",
               "PATH": "/usr/bin"}
    config = parse_run_config("queue: 5\nbatch: 7\n", "run.yml", environ=environ)
    assert config.syslog == Listen(host="0.0.0.0", udp=514, tcp=None)
    assert (config.queue, config.batch) == (50_000, 7)
    assert parse_run_config("", "run.yml", environ={"SOCCTL_RUN_BATCH": "9"}).batch == 9


@pytest.mark.parametrize(("environ", "message"), [
    ({"SOCCTL_RUN_QEUE": "5"}, "SOCCTL_RUN_QEUE: unknown setting 'qeue'"),
    ({"SOCCTL_RUN_QUEUE": "0"}, "environment SOCCTL_RUN_QUEUE: queue: expected a whole number >= 1, not 0"),
    ({"SOCCTL_RUN_SYSLOG": "{udp: [}"}, "environment SOCCTL_RUN_SYSLOG:1: invalid YAML"),
], ids=["unknown", "invalid", "yaml"])
def test_environment_override_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(RunConfigError) as caught:
        parse_run_config("queue: 5\n", "run.yml", environ=environ)
    assert str(caught.value).startswith(message)


def test_yara_settings_become_runtime_options() -> None:
    config = parse_run_config("yara: {rules: [/etc/socctl/yara], timeout: 3s, max_bytes: 1MiB}\n", "run.yml",
                              environ={})
    runtime = config.runtime
    assert (runtime.yara, runtime.yara_rules, runtime.yara_timeout_s, runtime.yara_max_size) == (
        True, (Path("/etc/socctl/yara"),), 3, 1 << 20)
    assert parse_run_config("yara: {enabled: false}\n", "run.yml", environ={}).runtime.yara is False
    default = parse_run_config("", "run.yml", environ={}).runtime
    assert (default.yara, default.yara_rules, default.yara_max_size) == (True, None, 32 << 20)
    with pytest.raises(RunConfigError, match=r"run.yml:1: yara.timeout: expected at least 1s"):
        parse_run_config("yara: {timeout: 10ms}\n", "run.yml", environ={})


def test_watched_directories() -> None:
    from correlator.live.config import Watch

    config = parse_run_config("watch: [/srv/drop/evtx, {path: /srv/drop/eve, pattern: '*.json', format: "
                              "suricata-eve}]\n", "run.yml", environ={})
    assert config.watch == (Watch(Path("/srv/drop/evtx")), Watch(Path("/srv/drop/eve"), "*.json", "suricata-eve"))
    with pytest.raises(RunConfigError, match=r"run.yml:1: watch\[0\].format: unknown format 'evtxx'"):
        parse_run_config("watch: [{path: /d, format: evtxx}]\n", "run.yml", environ={})
    with pytest.raises(RunConfigError, match=r"run.yml:1: watch\[0\]: expected a path or"):
        parse_run_config("watch: [{dir: /d}]\n", "run.yml", environ={})
