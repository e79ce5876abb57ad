"""`coord data backup | restore`: an online, consistent backup of a live server, and a new data dir from it.

backup asks a running server's AdminServer for a snapshot of its tree as of now (ZooKeeper 3.9's
`GET /commands/snapshot?streaming=true`, `Authorization: digest user:password`): coord takes it
without stalling the server (a forked child writes it) and the file is consistent at one zxid, so no
txn log has to go with it. The backup is a folder (or a .tar of one) holding the snapshot file and
manifest.json (zxid, size, sha256, source, time). restore checks the checksum and writes the snapshot,
and the epochs of its zxid, into an empty data dir: one backup seeds every member of a new ensemble,
which then starts with the backed-up tree (same digest).
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import click

MANIFEST = "manifest.json"


class BackupError(Exception):
    pass


def fetch_snapshot(admin: str, auth: str, timeout: float = 600.0, url_path: str = "/commands") -> tuple[int, bytes]:
    """(zxid, snapshot bytes) from a live server's AdminServer at HOST:PORT."""
    req = urllib.request.Request(f"http://{admin}{url_path}/snapshot?streaming=true",
                                 headers={"Authorization": f"digest {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
            zxid, size = r.headers.get("last_zxid"), r.headers.get("snapshot_size")
    except urllib.error.HTTPError as e:
        raise BackupError(f"{admin}: HTTP {e.code}: {e.read().decode(errors='replace').strip()}") from None
    except OSError as e:
        raise BackupError(f"{admin}: cannot reach the AdminServer: {e}") from None
    if zxid is None or size is None:
        raise BackupError(f"{admin}: the answer has no last_zxid/snapshot_size headers (not coord or ZooKeeper 3.9?)")
    if int(size) != len(data):
        raise BackupError(f"{admin}: got {len(data)} bytes, the server announced {size}")
    return int(zxid, 16), data


def write_backup(out: Path, zxid: int, data: bytes, source: str) -> dict:
    from coord.aio.snapshots import snapshot_name
    manifest = {"format": "coord-backup-1", "zxid": f"0x{zxid:x}", "snapshot": snapshot_name(zxid),
                "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "source": source,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    mbytes = (json.dumps(manifest, indent=2) + "\n").encode()
    if out.suffix == ".tar":
        if out.exists():
            raise BackupError(f"{out} exists")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w") as tar:
            for name, blob in ((manifest["snapshot"], data), (MANIFEST, mbytes)):
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        return manifest
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    (out / manifest["snapshot"]).write_bytes(data)
    (out / MANIFEST).write_bytes(mbytes)
    return manifest


def read_backup(src: Path) -> tuple[dict, bytes]:
    """The manifest and the snapshot bytes, checked against the manifest's size and sha256."""
    try:
        if src.is_file():
            with tarfile.open(src) as tar:
                manifest = json.loads(tar.extractfile(MANIFEST).read())
                data = tar.extractfile(manifest["snapshot"]).read()
        else:
            manifest = json.loads((src / MANIFEST).read_text())
            data = (src / manifest["snapshot"]).read_bytes()
    except (OSError, KeyError, ValueError, tarfile.TarError, AttributeError) as e:
        raise BackupError(f"{src}: not a readable coord backup ({e})") from None
    if len(data) != manifest["size"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise BackupError(f"{src}: the snapshot does not match the manifest's size/sha256: damaged backup")
    return manifest, data


def restore_into(src: Path, data_dir: Path) -> dict:
    """Write the backup's snapshot (and the epochs of its zxid) into an empty data dir."""
    from coord.aio.datadir import snap_dir_of
    from coord.aio.epochs import EpochStore
    from coord.aio.snapshots import read_snapshot, write_snapshot_bytes
    manifest, data = read_backup(src)
    sd = snap_dir_of(data_dir)
    if sd.exists() and any(sd.iterdir()):
        raise BackupError(f"{sd} is not empty: restore only into a new data dir")
    zxid = int(manifest["zxid"], 16)
    path = write_snapshot_bytes(sd, zxid, data)
    try:
        tree, _ = read_snapshot(path)      # the snapshot must load, as a start will load it
    except Exception as e:
        path.unlink()
        raise BackupError(f"{src}: the snapshot does not load: {e}") from None
    epoch = zxid >> 32
    EpochStore(sd).write(epoch, epoch)
    return {**manifest, "znodes": tree.node_count(), "digest": tree.digest}


def add_commands(group: click.Group) -> None:
    @group.command("backup")
    @click.option("--admin", "admin", required=True, metavar="HOST:PORT",
                  help="The server's AdminServer (admin.serverPort, 8080 by default).")
    @click.option("--auth", required=True, metavar="USER:PASSWORD",
                  help="A digest id with ALL permission on / (or the superDigest user).")
    @click.option("--command-url", default="/commands", show_default=True, help="admin.commandURL.")
    @click.argument("out", type=click.Path(path_type=Path))
    def backup_cmd(admin, auth, command_url, out: Path) -> None:
        """Back up a live server: a snapshot as of now, into folder OUT (or OUT.tar)."""
        try:
            zxid, data = fetch_snapshot(admin, auth, url_path=command_url.rstrip("/"))
            m = write_backup(out, zxid, data, admin)
        except BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"backup of {admin} at zxid {m['zxid']}: {m['size']} bytes, sha256 {m['sha256'][:16]}... -> {out}")

    @group.command("restore")
    @click.argument("backup", type=click.Path(exists=True, path_type=Path))
    @click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
    def restore_cmd(backup: Path, data_dir: Path) -> None:
        """Restore BACKUP into the empty DATA_DIR (each member of a new ensemble gets the same)."""
        try:
            m = restore_into(backup, data_dir)
        except BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"restored zxid {m['zxid']} ({m['znodes']} znodes, digest {m['digest']}) into {data_dir}")
