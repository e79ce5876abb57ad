"""Kafka's own command-line tools (kafka-topics.sh and friends) by main class, from the same jars."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coord.kafka.libs import classpath

TOPICS = "org.apache.kafka.tools.TopicCommand"            # kafka-topics.sh (bootstrap only in 3.9)
CONFIGS = "kafka.admin.ConfigCommand"                     # kafka-configs.sh (--zookeeper still there)
ACLS = "kafka.admin.AclCommand"                           # kafka-acls.sh
REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
ZK_SHELL = "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"      # kafka-producer-perf-test.sh
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"      # kafka-consumer-perf-test.sh
VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"  # kafka-verifiable-producer.sh
VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"  # kafka-verifiable-consumer.sh

# Warnings and errors to stderr, as Kafka's config/tools-log4j.properties does.
TOOLS_LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
"""
# Short-lived JVMs: the C1 compiler only and a small serial heap start fastest on a busy 2-core box.
TOOL_JVM = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
            "-Djava.awt.headless=true"]


def tool_command(main_class: str, args: list[str], workdir: Path, jvm_flags=()) -> list[str]:
    log4j = Path(workdir) / "tools-log4j.properties"
    if not log4j.exists():
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(TOOLS_LOG4J)
    return ["java", *TOOL_JVM, *jvm_flags, f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath(), main_class,
            *map(str, args)]


def run_tool(main_class: str, args: list[str], workdir: Path, timeout: float = 120.0,
             check: bool = True, jvm_flags=()) -> subprocess.CompletedProcess:
    """Run one tool to completion; check=True raises with its output when it exits non-zero."""
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    proc = subprocess.run(tool_command(main_class, args, workdir, jvm_flags), capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{main_class.rsplit('.', 1)[-1]} {' '.join(map(str, args))} exited "
                           f"{proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
