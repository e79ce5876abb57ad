"""Server settings the core needs (parsed from zoo.cfg by the shell; defaults as ZooKeeper's)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from coord.jute.protocol import DEFAULT_JUTE_MAXBUFFER

if TYPE_CHECKING:
    from coord.core.sasl import SaslConfig
    from coord.core.throttle import BlueThrottleConfig


@dataclass
class CoreConfig:
    server_id: int = 0
    tick_ms: int = 2000
    min_session_timeout_ms: int = -1   # -1: 2 x tickTime
    max_session_timeout_ms: int = -1   # -1: 20 x tickTime
    extended_types: bool = False
    super_digest: str | None = None    # "super:<base64 sha1>"
    max_buffer: int = DEFAULT_JUTE_MAXBUFFER
    max_queued_per_connection: int = 1000
    container_check_interval_ms: int = 60000
    config_data: bytes = b""           # contents of /zookeeper/config
    read_only: bool = False            # serving as ZooKeeper's ReadOnlyZooKeeperServer
    quorum: bool = False               # an ensemble member (local sessions and reconfig need one)
    local_sessions: bool = False       # localSessionsEnabled
    local_sessions_upgrading: bool = False  # localSessionsUpgradingEnabled
    reconfig_enabled: bool = False     # reconfigEnabled
    standalone_enabled: bool = True    # standaloneEnabled (a reconfig must then keep 2 voters)
    sasl: "SaslConfig | None" = None   # a JAAS Server section: SASL on the client port (coord.core.sasl)
    enforce_auth: frozenset = frozenset()   # enforce.auth.schemes when enforce.auth.enabled (or {sasl})
    connection_throttle: "BlueThrottleConfig | None" = None   # connection_throttle_* (coord.core.throttle)
    random: Callable[[], float] = lambda: 0.5   # uniform draws in [0, 1) (BLUE drops), from the shell
    # request_throttle_max_requests (0: off), throttled_op_wait_time, request_throttle_drop_stale
    request_throttle: tuple[int, int, bool] | None = None
    enforce_quota: bool = False        # zookeeper.enforceQuota: hard quota limits (coord.core.quota)
    extra: dict = field(default_factory=dict)

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout_ms if self.min_session_timeout_ms > 0 else 2 * self.tick_ms

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout_ms if self.max_session_timeout_ms > 0 else 20 * self.tick_ms
