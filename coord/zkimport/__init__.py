"""Read Apache ZooKeeper 3.x data directories (snapshot.* and log.* in its jute formats) and turn
them into a coord data directory: `coord data import-zookeeper ZK_DATA_DIR COORD_DATA_DIR`."""
from coord.zkimport.importer import ImportResult, import_zookeeper, zk_digest
from coord.zkimport.zkfiles import ZkFormatError, read_log, read_snapshot

__all__ = ["ImportResult", "ZkFormatError", "import_zookeeper", "read_log", "read_snapshot", "zk_digest"]
