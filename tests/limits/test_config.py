"""The limits keys in zoo.cfg and -D flags: ZooKeeper's names (with or without `zookeeper.`) and
defaults; a bad value stops the start naming the line (ZooKeeper itself reads most of them with
Integer.getInteger and silently falls back to the default: docs/security.md)."""
from __future__ import annotations

import pytest

from coord.aio import zoocfg
from coord.core.throttle import BlueThrottleConfig


def test_defaults_are_zookeepers():
    c = zoocfg.parse("tickTime=2000\n")
    assert c.limits["enforceQuota"] is False and c.limits["maxCnxns"] == 0
    assert c.limits["request_throttle_max_requests"] == 0 and c.limits["request_throttle_stall_time"] == 100
    assert c.limits["request_throttle_drop_stale"] is True and c.limits["connection_throttle_tokens"] == 0
    assert BlueThrottleConfig.from_limits(c.limits) == BlueThrottleConfig()


def test_keys_with_and_without_prefix():
    c = zoocfg.parse("enforceQuota=true\nzookeeper.maxCnxns=7\nzookeeper.connection_throttle_tokens=5\n"
                     "connection_throttle_weight_enabled=true\nconnection_throttle_global_session_weight=0\n")
    assert c.limits["enforceQuota"] is True and c.limits["maxCnxns"] == 7
    t = BlueThrottleConfig.from_limits(c.limits)
    # weights on: the bucket is in global-session units; a weight below 1 falls back to 3
    assert (t.tokens, t.global_weight, t.fill_count) == (15, 3, 3)


@pytest.mark.parametrize("line,message", [
    ("enforceQuota=yes", "enforceQuota must be true or false"),
    ("maxCnxns=many", "maxCnxns must be an integer"),
    ("zookeeper.request_throttle_max_requests=1.5", "request_throttle_max_requests must be an integer"),
    ("connection_throttle_fill_time=0", "connection_throttle_fill_time must be a positive"),
    ("connection_throttle_drop_increase=lots", "connection_throttle_drop_increase must be a number"),
])
def test_bad_value_names_the_line(line, message):
    with pytest.raises(zoocfg.ConfigError) as e:
        zoocfg.parse(f"tickTime=2000\n{line}\n", "/etc/zk/zoo.cfg")
    assert str(e.value).startswith("/etc/zk/zoo.cfg:2: ") and message in str(e.value)


def test_negative_max_cnxns_is_zookeepers_default_with_a_warning():
    c = zoocfg.parse("maxCnxns=-3\n")
    assert c.limits["maxCnxns"] == 0 and any("maxCnxns" in w for w in c.warnings)


def test_jvm_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nmaxCnxns=4\n")
    monkeypatch.setenv("SERVER_JVMFLAGS", "-Dzookeeper.enforceQuota=true -Dzookeeper.maxCnxns=9")
    c = zoocfg.load(cfg)
    assert c.limits["enforceQuota"] is True and c.limits["maxCnxns"] == 4   # zoo.cfg wins
    monkeypatch.setenv("SERVER_JVMFLAGS", "-Dzookeeper.request_throttle_stall_time=soon")
    with pytest.raises(zoocfg.ConfigError, match="SERVER_JVMFLAGS: -Dzookeeper.request_throttle_stall_time"):
        zoocfg.load(cfg)
