"""zoo.cfg as an operator writes it: good files load, a bad line stops the start naming file and line."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coord.aio import zoocfg
from coord.cli import main


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "zoo.cfg"
    p.write_text(text)
    return p


def test_a_hand_written_standalone_file_loads(tmp_path):
    p = write(tmp_path, "# comment\ntickTime=500\ndataDir=%s\nclientPort=2299\nforceSync=no\nfooBar=1\n" % (tmp_path / "d"))
    cfg = zoocfg.load(p)
    assert (cfg.tick_ms, cfg.client_port, cfg.force_sync, cfg.data_dir) == (500, 2299, False, tmp_path / "d")
    assert cfg.warnings == [f"{p}:6: unknown key 'fooBar' ignored"]


@pytest.mark.parametrize("line, message", [
    ("clientPort=abc", "clientPort must be an integer, got 'abc'"),
    ("clientPort=99999", "clientPort must be a port number"),
    ("tickTime", "expected key=value, got 'tickTime'"),
    ("tickTime=0", "tickTime must be positive"),
    ("forceSync=maybe", "forceSync must be true or false"),
    ("server.1=127.0.0.1:2888", "server.1 must be host:quorumPort:electionPort"),
])
def test_a_bad_line_is_named(tmp_path, line, message):
    p = write(tmp_path, f"tickTime=2000\ndataDir={tmp_path / 'd'}\n{line}\n")
    with pytest.raises(zoocfg.ConfigError) as e:
        zoocfg.load(p)
    assert str(e.value).startswith(f"{p}:3: ") and message in str(e.value)


def test_dataDir_is_required_unless_given_on_the_command_line(tmp_path):
    p = write(tmp_path, "tickTime=2000\nclientPort=2299\n")
    with pytest.raises(zoocfg.ConfigError, match="dataDir is not set"):
        zoocfg.load(p)
    assert zoocfg.load(p, tmp_path / "d").data_dir == tmp_path / "d"


def test_the_data_dir_override_is_where_myid_is_read(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "myid").write_text("2\n")
    p = write(tmp_path, "dataDir=/nonexistent\nserver.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\n")
    assert zoocfg.load(p, d).myid == 2


def test_serve_stops_with_the_line_and_no_traceback(tmp_path):
    p = write(tmp_path, f"dataDir={tmp_path / 'd'}\nclientPort=abc\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(p)])
    assert result.exit_code == 1
    assert f"Error: {p}:2: clientPort must be an integer, got 'abc'" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_busy_port_says_so_without_a_traceback(tmp_path):
    import socket
    import subprocess
    import sys
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = write(tmp_path, f"dataDir={tmp_path / 'd'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n")
        r = subprocess.run([sys.executable, "-m", "coord.cli", "serve", "--config", str(p)],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Error: cannot start:" in r.stderr and "address already in use" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
