"""Every record of zookeeper.jute (3.8), field names and order exactly as there.

Modules org.apache.zookeeper.data, .proto, .txn, .server.persistence; plus ClientInfo/WhoAmIResponse
(3.7+). The quorum records are not here: coord's peers speak their own format (coord.core.zab).
"""
from __future__ import annotations

from coord.jute.codec import record

ACL_V = "vector<ACL>"
STRS = "vector<ustring>"

# org.apache.zookeeper.data
Id = record("Id", [("scheme", "ustring"), ("id", "ustring")])
ACL = record("ACL", [("perms", "int"), ("id", "Id")])
Stat = record("Stat", [
    ("czxid", "long"), ("mzxid", "long"), ("ctime", "long"), ("mtime", "long"),
    ("version", "int"), ("cversion", "int"), ("aversion", "int"), ("ephemeralOwner", "long"),
    ("dataLength", "int"), ("numChildren", "int"), ("pzxid", "long")])
StatPersisted = record("StatPersisted", [
    ("czxid", "long"), ("mzxid", "long"), ("ctime", "long"), ("mtime", "long"),
    ("version", "int"), ("cversion", "int"), ("aversion", "int"), ("ephemeralOwner", "long"),
    ("pzxid", "long")])

# org.apache.zookeeper.proto
ConnectRequest = record("ConnectRequest", [
    ("protocolVersion", "int"), ("lastZxidSeen", "long"), ("timeOut", "int"),
    ("sessionId", "long"), ("passwd", "buffer")])
ConnectResponse = record("ConnectResponse", [
    ("protocolVersion", "int"), ("timeOut", "int"), ("sessionId", "long"), ("passwd", "buffer")])
SetWatches = record("SetWatches", [
    ("relativeZxid", "long"), ("dataWatches", STRS), ("existWatches", STRS), ("childWatches", STRS)])
SetWatches2 = record("SetWatches2", [
    ("relativeZxid", "long"), ("dataWatches", STRS), ("existWatches", STRS), ("childWatches", STRS),
    ("persistentWatches", STRS), ("persistentRecursiveWatches", STRS)])
RequestHeader = record("RequestHeader", [("xid", "int"), ("type", "int")])
MultiHeader = record("MultiHeader", [("type", "int"), ("done", "bool"), ("err", "int")])
AuthPacket = record("AuthPacket", [("type", "int"), ("scheme", "ustring"), ("auth", "buffer")])
ReplyHeader = record("ReplyHeader", [("xid", "int"), ("zxid", "long"), ("err", "int")])
GetDataRequest = record("GetDataRequest", [("path", "ustring"), ("watch", "bool")])
SetDataRequest = record("SetDataRequest", [("path", "ustring"), ("data", "buffer"), ("version", "int")])
ReconfigRequest = record("ReconfigRequest", [
    ("joiningServers", "ustring"), ("leavingServers", "ustring"), ("newMembers", "ustring"),
    ("curConfigId", "long")])
SetDataResponse = record("SetDataResponse", [("stat", "Stat")])
GetSASLRequest = record("GetSASLRequest", [("token", "buffer")])
SetSASLRequest = record("SetSASLRequest", [("token", "buffer")])
SetSASLResponse = record("SetSASLResponse", [("token", "buffer")])
CreateRequest = record("CreateRequest", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("flags", "int")])
CreateTTLRequest = record("CreateTTLRequest", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("flags", "int"), ("ttl", "long")])
DeleteRequest = record("DeleteRequest", [("path", "ustring"), ("version", "int")])
GetChildrenRequest = record("GetChildrenRequest", [("path", "ustring"), ("watch", "bool")])
GetAllChildrenNumberRequest = record("GetAllChildrenNumberRequest", [("path", "ustring")])
GetStatPersistedRequest = record("GetStatPersistedRequest", [("path", "ustring")])
GetChildren2Request = record("GetChildren2Request", [("path", "ustring"), ("watch", "bool")])
CheckVersionRequest = record("CheckVersionRequest", [("path", "ustring"), ("version", "int")])
GetMaxChildrenRequest = record("GetMaxChildrenRequest", [("path", "ustring")])
GetMaxChildrenResponse = record("GetMaxChildrenResponse", [("max", "int")])
SetMaxChildrenRequest = record("SetMaxChildrenRequest", [("path", "ustring"), ("max", "int")])
SyncRequest = record("SyncRequest", [("path", "ustring")])
SyncResponse = record("SyncResponse", [("path", "ustring")])
GetACLRequest = record("GetACLRequest", [("path", "ustring")])
SetACLRequest = record("SetACLRequest", [("path", "ustring"), ("acl", ACL_V), ("version", "int")])
SetACLResponse = record("SetACLResponse", [("stat", "Stat")])
AddWatchRequest = record("AddWatchRequest", [("path", "ustring"), ("mode", "int")])
WatcherEvent = record("WatcherEvent", [("type", "int"), ("state", "int"), ("path", "ustring")])
ErrorResponse = record("ErrorResponse", [("err", "int")])
CreateResponse = record("CreateResponse", [("path", "ustring")])
Create2Response = record("Create2Response", [("path", "ustring"), ("stat", "Stat")])
ExistsRequest = record("ExistsRequest", [("path", "ustring"), ("watch", "bool")])
ExistsResponse = record("ExistsResponse", [("stat", "Stat")])
GetDataResponse = record("GetDataResponse", [("data", "buffer"), ("stat", "Stat")])
GetChildrenResponse = record("GetChildrenResponse", [("children", STRS)])
GetAllChildrenNumberResponse = record("GetAllChildrenNumberResponse", [("totalNumber", "int")])
GetStatPersistedResponse = record("GetStatPersistedResponse", [("statPersisted", "StatPersisted")])
GetChildren2Response = record("GetChildren2Response", [("children", STRS), ("stat", "Stat")])
GetACLResponse = record("GetACLResponse", [("acl", ACL_V), ("stat", "Stat")])
CheckWatchesRequest = record("CheckWatchesRequest", [("path", "ustring"), ("type", "int")])
RemoveWatchesRequest = record("RemoveWatchesRequest", [("path", "ustring"), ("type", "int")])
GetEphemeralsRequest = record("GetEphemeralsRequest", [("prefixPath", "ustring")])
GetEphemeralsResponse = record("GetEphemeralsResponse", [("ephemerals", STRS)])
ClientInfo = record("ClientInfo", [("authScheme", "ustring"), ("user", "ustring")])
WhoAmIResponse = record("WhoAmIResponse", [("clientInfo", "vector<ClientInfo>")])

# org.apache.zookeeper.server.persistence
FileHeader = record("FileHeader", [("magic", "int"), ("version", "int"), ("dbid", "long")])

# org.apache.zookeeper.txn
TxnDigest = record("TxnDigest", [("version", "int"), ("treeDigest", "long")])
TxnHeader = record("TxnHeader", [
    ("clientId", "long"), ("cxid", "int"), ("zxid", "long"), ("time", "long"), ("type", "int")])
CreateTxnV0 = record("CreateTxnV0", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("ephemeral", "bool")])
CreateTxn = record("CreateTxn", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("ephemeral", "bool"),
    ("parentCVersion", "int")])
CreateTTLTxn = record("CreateTTLTxn", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("parentCVersion", "int"), ("ttl", "long")])
CreateContainerTxn = record("CreateContainerTxn", [
    ("path", "ustring"), ("data", "buffer"), ("acl", ACL_V), ("parentCVersion", "int")])
DeleteTxn = record("DeleteTxn", [("path", "ustring")])
SetDataTxn = record("SetDataTxn", [("path", "ustring"), ("data", "buffer"), ("version", "int")])
CheckVersionTxn = record("CheckVersionTxn", [("path", "ustring"), ("version", "int")])
SetACLTxn = record("SetACLTxn", [("path", "ustring"), ("acl", ACL_V), ("version", "int")])
SetMaxChildrenTxn = record("SetMaxChildrenTxn", [("path", "ustring"), ("max", "int")])
CreateSessionTxn = record("CreateSessionTxn", [("timeOut", "int")])
CloseSessionTxn = record("CloseSessionTxn", [("paths2Delete", STRS)])
ErrorTxn = record("ErrorTxn", [("err", "int")])
Txn = record("Txn", [("type", "int"), ("data", "buffer")])
MultiTxn = record("MultiTxn", [("txns", "vector<Txn>")])

ALL = [v for v in list(globals().values()) if isinstance(v, type) and hasattr(v, "FIELDS") and v.FIELDS]
