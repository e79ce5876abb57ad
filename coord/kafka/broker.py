"""One real Kafka 3.9 broker in ZooKeeper mode: its server.properties and its JVM process.

Settings are the production ones from Kafka's config/server.properties, trimmed for a small machine:
few network/io threads, 6 offsets partitions instead of 50, no initial rebalance delay, and a lean
JVM (serial GC, a 512 MiB heap instead of kafka-server-start.sh's 1 GiB with G1).
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from coord.kafka.libs import classpath

LOG4J = """log4j.rootLogger=INFO, F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=${kafka.logs.dir}/server.log
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=INFO
"""
BROKER_JVM = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.awt.headless=true"]


@dataclass
class BrokerSpec:
    broker_id: int
    port: int
    zk_connect: str                  # with the chroot, e.g. 127.0.0.1:2181,127.0.0.1:2182/kafka
    dir: Path
    replication: int = 3             # offsets/transactions/default topic replication factor
    session_timeout_ms: int = 18000  # zookeeper.session.timeout.ms (Kafka's default)
    sasl_port: int | None = None     # a SASL_PLAINTEXT (SCRAM) listener for non-super users
    authorizer: bool = False         # kafka.security.authorizer.AclAuthorizer, ACLs kept in ZooKeeper
    extra: dict[str, str] = field(default_factory=dict)
    jvm_flags: list[str] = field(default_factory=list)   # e.g. -Djava.security.auth.login.config=

    def properties(self) -> dict[str, str]:
        rf = self.replication
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        if self.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
        props = {
            "broker.id": str(self.broker_id),
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(listeners),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str((self.dir / "data").resolve()),
            "zookeeper.connect": self.zk_connect,
            "zookeeper.session.timeout.ms": str(self.session_timeout_ms),
            "zookeeper.connection.timeout.ms": "30000",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 << 20),
            "num.partitions": "3",
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min(2, rf)),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "inter.broker.protocol.version": "3.9",
        }
        if self.sasl_port:
            props.update({
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            })
        if self.authorizer:
            # The PLAINTEXT listener (brokers, tools) is User:ANONYMOUS: a super user; SCRAM users
            # on the SASL listener get only what the ACLs in ZooKeeper grant them.
            props.update({"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                          "super.users": "User:ANONYMOUS"})
        props.update(self.extra)
        return props


class Broker:
    """A broker's JVM (kafka.Kafka server.properties), with its logs under its own dir; any spec with
    broker_id, port, dir and properties() runs the same way (coord/kafka/migration.py's KRaft controller)."""

    def __init__(self, spec: BrokerSpec):
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.log_offset = 0   # where this run's lines start in server.log (it is appended to)

    @property
    def broker_id(self) -> int:
        return self.spec.broker_id

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.spec.port}"

    @property
    def log_path(self) -> Path:
        return self.spec.dir / "logs" / "server.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        d = self.spec.dir.resolve()
        return ["java", *BROKER_JVM, *getattr(self.spec, "jvm_flags", ()), f"-Dlog4j.configuration=file:{d / 'log4j.properties'}",
                f"-Dkafka.logs.dir={d / 'logs'}", "-cp", classpath(), "kafka.Kafka", str(d / "server.properties")]

    def start(self) -> "Broker":
        assert not self.alive, f"broker {self.broker_id} already running"
        d = self.spec.dir
        (d / "logs").mkdir(parents=True, exist_ok=True)
        (d / "log4j.properties").write_text(LOG4J)
        (d / "server.properties").write_text(
            "# written by coord.kafka.broker\n" + "".join(f"{k}={v}\n" for k, v in self.spec.properties().items()))
        env = dict(os.environ)
        env.pop("JAVA_TOOL_OPTIONS", None)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(d / "logs" / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env,
                                         cwd=d, start_new_session=True)
        self.paused = False
        return self

    def kill(self) -> None:
        """kill -9: no controlled shutdown, its ZooKeeper session is left to expire."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.proc = None

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: a controlled shutdown (leaders moved away, session closed)."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def log_text(self, this_run: bool = False) -> str:
        """server.log; this_run: only what the current (last started) JVM wrote."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset if this_run else 0)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def exit_report(self) -> str:
        """Why this JVM ended, as far as its logs say: its ERROR and FATAL lines (the cause is in
        them, while the log's tail is only the shutdown that followed), then the end of stdout."""
        errors = [line for line in self.log_text(this_run=True).splitlines()
                  if " ERROR " in line or " FATAL " in line]
        try:
            stdout = (self.spec.dir / "logs" / "stdout.log").read_text(errors="replace")[-1500:]
        except OSError:
            stdout = ""
        return ("ERROR/FATAL lines:\n" + "\n".join(errors[:12]) if errors else "no ERROR line in server.log") \
            + "\nstdout ends:\n" + stdout

    def started(self) -> bool:
        """The server logged the end of its start-up (a ZooKeeper-mode broker, or a KRaft node)."""
        text = self.log_text(this_run=True)
        return (f"[KafkaServer id={self.broker_id}] started" in text
                or f"[KafkaRaftServer nodeId={self.broker_id}] Kafka Server started" in text)
