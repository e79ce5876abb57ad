import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import real_zk  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Real ZooKeeper must be present in CI; elsewhere its tests skip with the reason."""
    if real_zk.available():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI run without real ZooKeeper installed: scripts/setup.sh should have installed it")
    skip = pytest.mark.skip(reason="real ZooKeeper 3.8 not installed (apt-get install zookeeper)")
    for item in items:
        if "realzk" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """Stop any process a test started and did not stop (tests/support/reaper.py). Tests run in the
    xdist workers; the controller's own children are those workers, which xdist ends itself."""
    controller = getattr(session.config.option, "dist", "no") != "no" and not hasattr(session.config, "workerinput")
    if not controller:
        from tests.support.reaper import reap_descendants
        reap_descendants()


def pytest_terminal_summary(terminalreporter):
    """Say why each rerun test failed the first time: a rerun that meets its own leftovers (a node the
    first try made) fails differently, and without this the first, real reason is lost."""
    reruns = terminalreporter.stats.get("rerun", [])
    if reruns:
        terminalreporter.section("why tests were rerun")
    for rep in reruns:
        crash = getattr(rep.longrepr, "reprcrash", None)
        why = f"{crash.path}:{crash.lineno}: {crash.message}" if crash else str(rep.longrepr)[-600:]
        terminalreporter.write_line(f"RERUN {rep.nodeid} ({rep.when}): {why[:1200]}")


@pytest.fixture
def real_zookeeper(tmp_path):
    zk = real_zk.RealZooKeeper(tmp_path / "zk")
    zk.start()
    yield zk
    zk.stop()


@pytest.fixture
def coord_server(tmp_path):
    from tests.support.coord_server import CoordProcess
    srv = CoordProcess(tmp_path / "coord")
    srv.start()
    yield srv
    srv.stop()


# A 3-server coord ensemble for any suite (module-scoped; `.follower_hosts` names one follower).
from tests.support.ensemble import coord_ensemble  # noqa: E402,F401
