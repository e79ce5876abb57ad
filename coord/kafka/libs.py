"""Where the Kafka jars are: .cache/kafka-libs-<sha1 of kafka/pom.xml>/, filled by scripts/setup.sh.

Keyed on the pom's hash so that a version bump in the pom fetches afresh; `.complete` marks a copy
that finished. COORD_KAFKA_LIBS points elsewhere (an unpacked Kafka 3.9 tarball's libs/ works too).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "kafka" / "pom.xml"


def libs_dir() -> Path:
    """The directory the jars should be in (it may not exist yet)."""
    if os.environ.get("COORD_KAFKA_LIBS"):
        return Path(os.environ["COORD_KAFKA_LIBS"])
    digest = hashlib.sha1(POM.read_bytes()).hexdigest()[:12]
    return ROOT / ".cache" / f"kafka-libs-{digest}"


def missing_reason() -> str | None:
    """Why Kafka brokers cannot run here, or None when they can."""
    if shutil.which("java") is None:
        return "no java on PATH (apt-get install default-jdk-headless)"
    d = libs_dir()
    if not os.environ.get("COORD_KAFKA_LIBS") and not (d / ".complete").exists():
        why = "mvn is not installed" if shutil.which("mvn") is None else "set-up has not fetched them"
        return f"no Kafka jars in {d} ({why}; run scripts/setup.sh, which needs Maven Central)"
    if not jar_version(d, "kafka_2.13"):
        return f"{d} has no kafka_2.13 jar"
    return None


def classpath() -> str:
    return f"{libs_dir()}/*"


def jar_version(d: Path, artifact: str) -> str | None:
    """The version in <artifact>-<version>.jar inside d, e.g. jar_version(d, 'zookeeper') -> '3.8.4'."""
    pattern = re.compile(re.escape(artifact) + r"-(\d[\w.\-]*?)\.jar$")
    for p in sorted(d.glob(f"{artifact}-*.jar")) if d.is_dir() else []:
        m = pattern.match(p.name)
        if m:
            return m.group(1)
    return None


def versions() -> dict[str, str | None]:
    """Kafka's version and the ZooKeeper client it embeds (the zookeeper jar its POM brings)."""
    d = libs_dir()
    return {"kafka": jar_version(d, "kafka_2.13"), "zookeeper_client": jar_version(d, "zookeeper")}
