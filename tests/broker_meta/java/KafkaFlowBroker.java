/*
 * A "Java broker" for the broker_meta Kafka-flow harness: the ZooKeeper side of a Kafka broker in
 * ZooKeeper mode, written against the plain ZooKeeper Java client (the one Kafka 3.6 - 3.9 embeds),
 * following the spec's flows (reference/kafka-zk.md §3.1 - §3.4, §3.12):
 *
 *   - startup: chroot created through a separate session, persistent top-level paths, cluster id;
 *   - broker registration: multi[create(/brokers/ids/<id>, null, EPHEMERAL), setData(json, 0)],
 *     broker epoch = czxid of the SetDataResult; NODEEXISTS -> ephemeralOwner rules (KAFKA-7165);
 *   - controller election: multi[create(/controller, v2 json, EPHEMERAL), setData(/controller_epoch,
 *     E+1, V)], NODEEXISTS/BADVERSION -> re-read and check, watch on /controller, re-election on
 *     NodeDeleted, resignation when another broker leads;
 *   - as controller: every write is multi[check(/controller_epoch, epochZkVersion), op]; a BADVERSION
 *     on the check resigns; partition states are written conditionally on their version; leaders
 *     move off dead brokers (first live ISR member in assignment order), ISRs shrink and grow, new
 *     topics get their partition znodes;
 *   - session expiry: resign, new session (retry every second), re-register, re-elect.
 *
 * It prints one JSON object per line on stdout and reads commands on stdin: "expire" (expire our own
 * session from the server side, as ZooKeeper's tests do), "status", "quit".
 */

import org.apache.zookeeper.*;
import org.apache.zookeeper.data.Stat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.*;

public class KafkaFlowBroker implements Watcher {
    static final String CONTROLLER = "/controller";
    static final String CONTROLLER_EPOCH = "/controller_epoch";
    static final String BROKER_IDS = "/brokers/ids";
    static final String TOPICS = "/brokers/topics";
    static final String[] PERSISTENT_PATHS = {"/consumers", "/brokers/ids", "/brokers/topics", "/config/changes",
        "/admin/delete_topics", "/brokers/seqid", "/isr_change_notification", "/latest_producer_id_block",
        "/log_dir_event_notification", "/config/topics", "/config/clients", "/config/users", "/config/brokers",
        "/config/ips"};

    final String connect;
    final String hosts;
    final String chroot;
    final int brokerId;
    final int port;
    final int sessionTimeoutMs;
    volatile ZooKeeper zk;
    volatile CountDownLatch connected = new CountDownLatch(1);
    long currentZooKeeperSessionId = 0;  // the session of our last successful registration
    long brokerEpoch = -1;

    int activeControllerId = -1;
    int epoch = -1;
    int epochZkVersion = -1;
    final TreeMap<Integer, Long> liveBrokers = new TreeMap<>();
    final TreeMap<String, TreeMap<Integer, List<Integer>>> assignments = new TreeMap<>();
    final TreeMap<String, PState> states = new TreeMap<>();
    final ExecutorService events = Executors.newSingleThreadExecutor();

    static final class ControllerMoved extends Exception {
        ControllerMoved(String m) { super(m); }
    }

    static final class PState {
        int leader, leaderEpoch, controllerEpoch, version;
        List<Integer> isr;

        PState(int leader, int leaderEpoch, List<Integer> isr, int controllerEpoch, int version) {
            this.leader = leader; this.leaderEpoch = leaderEpoch; this.isr = isr;
            this.controllerEpoch = controllerEpoch; this.version = version;
        }
    }

    KafkaFlowBroker(String connect, int brokerId, int port, int sessionTimeoutMs) {
        this.connect = connect;
        int slash = connect.indexOf('/');
        this.hosts = slash < 0 ? connect : connect.substring(0, slash);
        this.chroot = slash < 0 ? "" : connect.substring(slash);
        this.brokerId = brokerId;
        this.port = port;
        this.sessionTimeoutMs = sessionTimeoutMs;
    }

    // ---- output -------------------------------------------------------------------------------

    static void out(String json) {
        synchronized (System.out) {
            System.out.println(json);
            System.out.flush();
        }
    }

    static String ints(Collection<Integer> xs) {
        StringBuilder b = new StringBuilder("[");
        boolean first = true;
        for (int x : xs) { if (!first) b.append(','); b.append(x); first = false; }
        return b.append(']').toString();
    }

    // ---- Kafka's JSON, in Kafka's byte order ------------------------------------------------------

    byte[] brokerJson() {
        String hostName = "127.0.0.1";
        String ts = Long.toString(System.currentTimeMillis());
        return ("{\"features\":{},\"listener_security_protocol_map\":{\"PLAINTEXT\":\"PLAINTEXT\"},"
            + "\"endpoints\":[\"PLAINTEXT://" + hostName + ":" + port + "\"],\"jmx_port\":-1,\"port\":" + port
            + ",\"host\":\"" + hostName + "\",\"version\":5,\"timestamp\":\"" + ts + "\"}").getBytes(StandardCharsets.UTF_8);
    }

    byte[] controllerJson() {
        return ("{\"version\":2,\"brokerid\":" + brokerId + ",\"timestamp\":\"" + System.currentTimeMillis()
            + "\",\"kraftControllerEpoch\":-1}").getBytes(StandardCharsets.UTF_8);
    }

    static byte[] stateJson(PState s) {
        return ("{\"controller_epoch\":" + s.controllerEpoch + ",\"leader\":" + s.leader + ",\"version\":1,"
            + "\"leader_epoch\":" + s.leaderEpoch + ",\"isr\":" + ints(s.isr) + "}").getBytes(StandardCharsets.UTF_8);
    }

    // A small JSON reader: objects (LinkedHashMap), arrays, strings, integers, true/false/null.
    static final class Json {
        final String s;
        int i;

        Json(String s) { this.s = s; }

        static Object parse(byte[] data) {
            if (data == null) return null;
            Json j = new Json(new String(data, StandardCharsets.UTF_8));
            return j.value();
        }

        void ws() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }

        Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (s.charAt(i) == '}') { i++; return m; }
                while (true) {
                    ws();
                    String k = (String) value();
                    ws(); i++; // ':'
                    m.put(k, value());
                    ws();
                    if (s.charAt(i++) == '}') return m;
                }
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (s.charAt(i) == ']') { i++; return l; }
                while (true) {
                    l.add(value());
                    ws();
                    if (s.charAt(i++) == ']') return l;
                }
            }
            if (c == '"') {
                StringBuilder b = new StringBuilder();
                i++;
                while (s.charAt(i) != '"') {
                    char d = s.charAt(i++);
                    if (d == '\\') {
                        char e = s.charAt(i++);
                        switch (e) {
                            case 'n': b.append('\n'); break;
                            case 't': b.append('\t'); break;
                            case 'r': b.append('\r'); break;
                            case 'b': b.append('\b'); break;
                            case 'f': b.append('\f'); break;
                            case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                            default: b.append(e);
                        }
                    } else b.append(d);
                }
                i++;
                return b.toString();
            }
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            int start = i;
            while (i < s.length() && "-0123456789".indexOf(s.charAt(i)) >= 0) i++;
            return Long.parseLong(s.substring(start, i));
        }
    }

    @SuppressWarnings("unchecked")
    static List<Integer> intList(Object o) {
        List<Integer> r = new ArrayList<>();
        for (Object x : (List<Object>) o) r.add(((Long) x).intValue());
        return r;
    }

    // ---- requests: Kafka's retryRequestsUntilConnected -------------------------------------------------
    // Every request is re-sent after CONNECTIONLOSS (as KafkaZkClient does through ZooKeeperClient);
    // the flows' checkers resolve the duplicates of non-idempotent ones: registration (ephemeralOwner
    // rules), election (re-read /controller and /controller_epoch), fenced conditional writes.

    interface ZkCall<T> { T call(ZooKeeper z) throws Exception; }

    static <T> T retry(ZooKeeper z, ZkCall<T> c) throws Exception {
        while (true) {
            try {
                return c.call(z);
            } catch (KeeperException.ConnectionLossException e) {
                Thread.sleep(100);
            }
        }
    }

    <T> T retry(ZkCall<T> c) throws Exception {
        return retry(zk, c);
    }

    byte[] getData(String p, boolean w, Stat st) throws Exception { return retry(z -> z.getData(p, w, st)); }

    Stat exists(String p, boolean w) throws Exception { return retry(z -> z.exists(p, w)); }

    List<String> getChildren(String p, boolean w) throws Exception { return retry(z -> z.getChildren(p, w)); }

    String create(String p, byte[] d, List<org.apache.zookeeper.data.ACL> acl, CreateMode m) throws Exception {
        return retry(z -> z.create(p, d, acl, m));
    }

    List<OpResult> multi(List<Op> ops) throws Exception { return retry(z -> z.multi(ops)); }

    void delete(String p, int v) throws Exception { retry(z -> { z.delete(p, v); return null; }); }

    // ---- session ----------------------------------------------------------------------------------

    @Override
    public void process(WatchedEvent e) {
        if (e.getType() == Event.EventType.None) {
            if (e.getState() == Event.KeeperState.SyncConnected) connected.countDown();
            if (e.getState() == Event.KeeperState.Expired) events.submit(this::onExpired);
            return;
        }
        final Event.EventType type = e.getType();
        final String path = e.getPath();
        events.submit(() -> handle(type, path));
    }

    void newSession() throws Exception {
        while (true) {
            connected = new CountDownLatch(1);
            ZooKeeper z = new ZooKeeper(connect, sessionTimeoutMs, this);
            if (connected.await(30, TimeUnit.SECONDS)) {
                zk = z;
                return;
            }
            z.close();
            Thread.sleep(1000);
        }
    }

    void createChrootIfNecessary() throws Exception {
        if (chroot.isEmpty()) return;
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper z = new ZooKeeper(hosts, sessionTimeoutMs, ev -> {
            if (ev.getState() == Event.KeeperState.SyncConnected) up.countDown();
        });
        up.await(30, TimeUnit.SECONDS);
        try {
            if (retry(z, c -> c.exists(chroot, false)) == null) createRecursive(z, chroot, null);
        } finally {
            z.close();
        }
    }

    static void createRecursive(ZooKeeper z, String path, byte[] data) throws Exception {
        try {
            retry(z, c -> c.create(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        } catch (KeeperException.NodeExistsException e) {
            // tolerated
        } catch (KeeperException.NoNodeException e) {
            createRecursive(z, path.substring(0, path.lastIndexOf('/')), null);
            try {
                retry(z, c -> c.create(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            } catch (KeeperException.NodeExistsException ignored) {
                // tolerated
            }
        }
    }

    void startup() throws Exception {
        createChrootIfNecessary();
        newSession();
        for (String p : PERSISTENT_PATHS) createRecursive(zk, p, null);
        String clusterId = getOrCreateClusterId();
        registerBroker();
        out("{\"event\":\"started\",\"broker\":" + brokerId + ",\"cluster_id\":\"" + clusterId + "\"}");
        exists(CONTROLLER, true);
        elect();
        watchBrokers();
    }

    String getOrCreateClusterId() throws Exception {
        try {
            Map<?, ?> m = (Map<?, ?>) Json.parse(getData("/cluster/id", false, null));
            return (String) m.get("id");
        } catch (KeeperException.NoNodeException e) {
            UUID u = UUID.randomUUID();
            java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(16).putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
            String id = Base64.getUrlEncoder().withoutPadding().encodeToString(bb.array());
            try {
                createRecursive(zk, "/cluster", null);
                create("/cluster/id", ("{\"version\":\"1\",\"id\":\"" + id + "\"}").getBytes(StandardCharsets.UTF_8),
                    ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                return id;
            } catch (KeeperException.NodeExistsException again) {
                return getOrCreateClusterId();
            }
        }
    }

    void registerBroker() throws Exception {
        String path = BROKER_IDS + "/" + brokerId;
        byte[] data = brokerJson();
        while (true) {
            try {
                List<OpResult> r = multi(Arrays.asList(
                    Op.create(path, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL),
                    Op.setData(path, data, 0)));
                brokerEpoch = ((OpResult.SetDataResult) r.get(1)).getStat().getCzxid();
                break;
            } catch (KeeperException.NodeExistsException e) {
                Stat st = new Stat();
                try {
                    getData(path, false, st);
                } catch (KeeperException.NoNodeException gone) {
                    continue;  // went away between the two calls: run the multi again
                }
                long owner = st.getEphemeralOwner();
                long session = zk.getSessionId();
                if (owner == currentZooKeeperSessionId && session != currentZooKeeperSessionId) {
                    out("{\"event\":\"recreate_leftover\",\"broker\":" + brokerId + ",\"owner\":\"0x" + Long.toHexString(owner) + "\"}");
                    try { delete(path, -1); } catch (KeeperException.NoNodeException ignored) { }
                    continue;
                }
                if (owner != session) {
                    out("{\"event\":\"register_failed\",\"broker\":" + brokerId + ",\"owner\":\"0x" + Long.toHexString(owner) + "\"}");
                    Thread.sleep(500);  // a fast restart: wait until the old session expires
                    continue;
                }
                brokerEpoch = st.getCzxid();
                break;
            } catch (KeeperException.ConnectionLossException e) {
                Thread.sleep(100);
            }
        }
        currentZooKeeperSessionId = zk.getSessionId();
        out("{\"event\":\"registered\",\"broker\":" + brokerId + ",\"epoch\":" + brokerEpoch
            + ",\"session\":\"0x" + Long.toHexString(zk.getSessionId()) + "\"}");
    }

    void onExpired() {
        out("{\"event\":\"expired\",\"broker\":" + brokerId + "}");
        resign();
        activeControllerId = -1;
        try {
            zk.close();
        } catch (InterruptedException ignored) { }
        while (true) {
            try {
                newSession();
                registerBroker();
                exists(CONTROLLER, true);
                elect();
                watchBrokers();
                return;
            } catch (Exception e) {
                out("{\"event\":\"error\",\"where\":\"new session\",\"message\":\"" + e + "\"}");
                try { Thread.sleep(1000); } catch (InterruptedException ignored) { return; }
            }
        }
    }

    // ---- election -----------------------------------------------------------------------------------

    int getControllerId() throws Exception {
        try {
            Map<?, ?> m = (Map<?, ?>) Json.parse(getData(CONTROLLER, true, null));
            Object kraft = m.get("kraftControllerEpoch");
            if (kraft != null && ((Long) kraft) > 0) out("{\"event\":\"kraft_controller\"}");
            return ((Long) m.get("brokerid")).intValue();
        } catch (KeeperException.NoNodeException e) {
            exists(CONTROLLER, true);
            return -1;
        }
    }

    boolean isActive() {
        return activeControllerId == brokerId && epochZkVersion >= 0;
    }

    int[] readEpoch() throws Exception {
        Stat st = new Stat();
        byte[] d = getData(CONTROLLER_EPOCH, false, st);
        return new int[]{Integer.parseInt(new String(d, StandardCharsets.UTF_8)), st.getVersion()};
    }

    void elect() {
        try {
            activeControllerId = getControllerId();
            if (activeControllerId != -1) {
                out("{\"event\":\"controller\",\"broker\":" + brokerId + ",\"controller\":" + activeControllerId + "}");
                return;
            }
            int[] cur;
            try {
                cur = readEpoch();
            } catch (KeeperException.NoNodeException e) {
                try {
                    create(CONTROLLER_EPOCH, "0".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    cur = new int[]{0, 0};
                } catch (KeeperException.NodeExistsException again) {
                    cur = readEpoch();
                }
            }
            int newEpoch = cur[0] + 1;
            while (true) {
                try {
                    List<OpResult> r = multi(Arrays.asList(
                        Op.create(CONTROLLER, controllerJson(), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL),
                        Op.setData(CONTROLLER_EPOCH, Integer.toString(newEpoch).getBytes(StandardCharsets.UTF_8), cur[1])));
                    epoch = newEpoch;
                    epochZkVersion = ((OpResult.SetDataResult) r.get(1)).getStat().getVersion();
                    break;
                } catch (KeeperException.NodeExistsException | KeeperException.BadVersionException e) {
                    int now = getControllerId();
                    int[] ep = readEpoch();
                    if (now == brokerId && ep[0] == newEpoch) {  // our earlier attempt landed
                        epoch = newEpoch;
                        epochZkVersion = ep[1];
                        break;
                    }
                    activeControllerId = now;
                    out("{\"event\":\"controller\",\"broker\":" + brokerId + ",\"controller\":" + now + "}");
                    return;
                } catch (KeeperException.ConnectionLossException e) {
                    Thread.sleep(100);
                }
            }
            activeControllerId = brokerId;
            onBecome();
        } catch (ControllerMoved e) {
            resign();
        } catch (Exception e) {
            out("{\"event\":\"error\",\"where\":\"elect\",\"message\":\"" + e.toString().replace('"', '\'') + "\"}");
        }
    }

    void handle(Event.EventType type, String path) {
        try {
            if (CONTROLLER.equals(path)) {
                if (type == Event.EventType.NodeDeleted) {
                    maybeResign();
                    elect();
                } else {
                    maybeResign();
                }
            } else if (BROKER_IDS.equals(path) && type == Event.EventType.NodeChildrenChanged) {
                brokerChange();
            } else if (TOPICS.equals(path) && type == Event.EventType.NodeChildrenChanged) {
                if (isActive()) topicChange();
            } else if (path != null && path.startsWith(TOPICS + "/") && type == Event.EventType.NodeDataChanged) {
                if (isActive()) topicChange();
            }
        } catch (ControllerMoved e) {
            out("{\"event\":\"fenced\",\"broker\":" + brokerId + "}");
            resign();
        } catch (Exception e) {
            out("{\"event\":\"error\",\"where\":\"" + path + "\",\"message\":\"" + e.toString().replace('"', '\'') + "\"}");
        }
    }

    void maybeResign() throws Exception {
        boolean was = isActive();
        activeControllerId = getControllerId();
        if (was && !isActive()) resign();
    }

    void resign() {
        if (epochZkVersion >= 0) out("{\"event\":\"resigned\",\"broker\":" + brokerId + ",\"epoch\":" + epoch + "}");
        epochZkVersion = -1;
        liveBrokers.clear();
        assignments.clear();
        states.clear();
    }

    // ---- controller -----------------------------------------------------------------------------------

    OpResult fenced(Op op) throws Exception {
        while (true) {
            try {
                return multi(Arrays.asList(Op.check(CONTROLLER_EPOCH, epochZkVersion), op)).get(1);
            } catch (KeeperException e) {
                if (e.code() == KeeperException.Code.CONNECTIONLOSS) {
                    Thread.sleep(100);
                    continue;
                }
                List<OpResult> rs = e.getResults();
                if (rs == null || rs.size() < 2) throw e;
                OpResult check = rs.get(0);
                if (check instanceof OpResult.ErrorResult) {
                    int err = ((OpResult.ErrorResult) check).getErr();
                    if (err == KeeperException.Code.BADVERSION.intValue())
                        throw new ControllerMoved("controller epoch zkVersion check failed");
                    if (err != 0) throw e;
                }
                return rs.get(1);
            }
        }
    }

    static int code(OpResult r) {
        return r instanceof OpResult.ErrorResult ? ((OpResult.ErrorResult) r).getErr() : 0;
    }

    void onBecome() throws Exception {
        out("{\"event\":\"elected\",\"broker\":" + brokerId + ",\"epoch\":" + epoch + ",\"epoch_zk_version\":" + epochZkVersion + "}");
        readBrokers();
        getChildren(TOPICS, true);
        loadTopics();
        int moved = electAndRepair(new HashSet<>(), new HashSet<>(liveBrokers.keySet()));
        out("{\"event\":\"ready\",\"broker\":" + brokerId + ",\"epoch\":" + epoch + ",\"partitions\":" + states.size()
            + ",\"changed\":" + moved + "}");
    }

    Map<Integer, Long> readBrokers() throws Exception {
        TreeMap<Integer, Long> now = new TreeMap<>();
        for (String c : getChildren(BROKER_IDS, true)) {
            Stat st = exists(BROKER_IDS + "/" + c, false);
            if (st != null) now.put(Integer.parseInt(c), st.getCzxid());
        }
        if (isActive()) {
            liveBrokers.clear();
            liveBrokers.putAll(now);
        }
        return now;
    }

    void watchBrokers() throws Exception {
        Map<Integer, Long> now = readBrokers();
        out("{\"event\":\"brokers\",\"broker\":" + brokerId + ",\"ids\":" + ints(now.keySet()) + "}");
    }

    void brokerChange() throws Exception {
        TreeMap<Integer, Long> before = new TreeMap<>(liveBrokers);
        Map<Integer, Long> now = readBrokers();
        out("{\"event\":\"brokers\",\"broker\":" + brokerId + ",\"ids\":" + ints(now.keySet()) + "}");
        if (!isActive()) return;
        Set<Integer> dead = new TreeSet<>(before.keySet());
        dead.removeAll(now.keySet());
        Set<Integer> started = new TreeSet<>(now.keySet());
        started.removeAll(before.keySet());
        for (Map.Entry<Integer, Long> e : now.entrySet()) {
            Long old = before.get(e.getKey());
            if (old != null && e.getValue() > old) { dead.add(e.getKey()); started.add(e.getKey()); }  // bounced
        }
        int changed = electAndRepair(dead, started);
        out("{\"event\":\"broker_change\",\"broker\":" + brokerId + ",\"dead\":" + ints(dead) + ",\"started\":"
            + ints(started) + ",\"changed\":" + changed + "}");
    }

    @SuppressWarnings("unchecked")
    void loadTopics() throws Exception {
        for (String t : getChildren(TOPICS, true)) {
            if (assignments.containsKey(t)) continue;
            byte[] d;
            try {
                d = getData(TOPICS + "/" + t, true, null);
            } catch (KeeperException.NoNodeException e) {
                continue;
            }
            Map<String, Object> m = (Map<String, Object>) Json.parse(d);
            TreeMap<Integer, List<Integer>> parts = new TreeMap<>();
            for (Map.Entry<String, Object> e : ((Map<String, Object>) m.get("partitions")).entrySet())
                parts.put(Integer.parseInt(e.getKey()), intList(e.getValue()));
            assignments.put(t, parts);
            for (int p : parts.keySet()) {
                String sp = TOPICS + "/" + t + "/partitions/" + p + "/state";
                Stat st = new Stat();
                try {
                    Map<String, Object> s = (Map<String, Object>) Json.parse(getData(sp, false, st));
                    states.put(t + "/" + p, new PState(((Long) s.get("leader")).intValue(),
                        ((Long) s.get("leader_epoch")).intValue(), intList(s.get("isr")),
                        ((Long) s.get("controller_epoch")).intValue(), st.getVersion()));
                } catch (KeeperException.NoNodeException e) {
                    // created below
                }
            }
        }
    }

    void topicChange() throws Exception {
        assignments.clear();
        states.clear();
        loadTopics();
        int created = initializeMissing();
        if (created > 0) out("{\"event\":\"partitions_created\",\"broker\":" + brokerId + ",\"count\":" + created + "}");
    }

    int initializeMissing() throws Exception {
        int created = 0;
        for (Map.Entry<String, TreeMap<Integer, List<Integer>>> t : assignments.entrySet()) {
            for (Map.Entry<Integer, List<Integer>> p : t.getValue().entrySet()) {
                String key = t.getKey() + "/" + p.getKey();
                if (states.containsKey(key)) continue;
                List<Integer> live = new ArrayList<>();
                for (int r : p.getValue()) if (liveBrokers.containsKey(r)) live.add(r);
                if (live.isEmpty()) continue;
                String base = TOPICS + "/" + t.getKey() + "/partitions";
                fenced(Op.create(base, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
                fenced(Op.create(base + "/" + p.getKey(), null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
                PState s = new PState(live.get(0), 0, live, epoch, 0);
                OpResult r = fenced(Op.create(base + "/" + p.getKey() + "/state", stateJson(s), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
                if (code(r) == 0) {
                    states.put(key, s);
                    created++;
                }
            }
        }
        return created;
    }

    /** Leaders off dead brokers, ISRs without them, returning brokers back into ISRs, leaderless elected. */
    int electAndRepair(Set<Integer> dead, Set<Integer> started) throws Exception {
        int changed = 0;
        Set<Integer> live = new HashSet<>(liveBrokers.keySet());
        live.removeAll(dead);
        live.addAll(started);
        for (Map.Entry<String, PState> e : new ArrayList<>(states.entrySet())) {
            String[] tp = e.getKey().split("/");
            List<Integer> replicas = assignments.get(tp[0]).get(Integer.parseInt(tp[1]));
            for (int attempt = 0; attempt < 5; attempt++) {
                PState cur = states.get(e.getKey());
                PState next = decide(cur, replicas, live, started);
                if (next == null) break;
                String sp = TOPICS + "/" + tp[0] + "/partitions/" + tp[1] + "/state";
                OpResult r = fenced(Op.setData(sp, stateJson(next), cur.version));
                if (code(r) == 0) {
                    next.version = ((OpResult.SetDataResult) r).getStat().getVersion();
                    states.put(e.getKey(), next);
                    changed++;
                    break;
                }
                if (code(r) != KeeperException.Code.BADVERSION.intValue()) break;
                Stat st = new Stat();
                @SuppressWarnings("unchecked")
                Map<String, Object> s = (Map<String, Object>) Json.parse(getData(sp, false, st));
                states.put(e.getKey(), new PState(((Long) s.get("leader")).intValue(), ((Long) s.get("leader_epoch")).intValue(),
                    intList(s.get("isr")), ((Long) s.get("controller_epoch")).intValue(), st.getVersion()));
            }
        }
        changed += initializeMissing();
        return changed;
    }

    PState decide(PState cur, List<Integer> replicas, Set<Integer> live, Set<Integer> started) {
        boolean needsLeader = cur.leader == -1 || !live.contains(cur.leader);
        List<Integer> liveIsr = new ArrayList<>();
        for (int r : cur.isr) if (live.contains(r)) liveIsr.add(r);
        if (needsLeader) {
            for (int r : replicas) {
                if (live.contains(r) && cur.isr.contains(r))
                    return new PState(r, cur.leaderEpoch + 1, liveIsr, epoch, cur.version);
            }
            if (cur.leader == -1) return null;
            List<Integer> isr = new ArrayList<>(cur.isr);
            for (int r : new ArrayList<>(cur.isr)) if (!live.contains(r) && isr.size() > 1) isr.remove((Integer) r);
            return new PState(-1, cur.leaderEpoch + 1, isr, epoch, cur.version);
        }
        if (liveIsr.size() < cur.isr.size())
            return new PState(cur.leader, cur.leaderEpoch + 1, liveIsr, epoch, cur.version);
        List<Integer> grow = new ArrayList<>(cur.isr);
        for (int r : replicas) if (started.contains(r) && live.contains(r) && !grow.contains(r)) grow.add(r);
        if (grow.size() > cur.isr.size())
            return new PState(cur.leader, cur.leaderEpoch, grow, epoch, cur.version);  // ISR growth keeps the leader epoch
        return null;
    }

    // ---- commands -------------------------------------------------------------------------------------

    void expireOwnSession() throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper twin = new ZooKeeper(connect, sessionTimeoutMs, ev -> {
            if (ev.getState() == Event.KeeperState.SyncConnected) up.countDown();
        }, zk.getSessionId(), zk.getSessionPasswd());
        up.await(30, TimeUnit.SECONDS);
        twin.close();
    }

    public static void main(String[] args) throws Exception {
        String connect = null;
        int id = -1, port = 9092, timeout = 6000;
        for (int i = 0; i < args.length; i += 2) {
            switch (args[i]) {
                case "--connect": connect = args[i + 1]; break;
                case "--broker-id": id = Integer.parseInt(args[i + 1]); break;
                case "--port": port = Integer.parseInt(args[i + 1]); break;
                case "--session-timeout-ms": timeout = Integer.parseInt(args[i + 1]); break;
                default: throw new IllegalArgumentException(args[i]);
            }
        }
        KafkaFlowBroker b = new KafkaFlowBroker(connect, id, port, timeout);
        b.events.submit(() -> { b.startup(); return null; }).get();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.equals("expire")) {
                b.expireOwnSession();
            } else if (line.equals("status")) {
                b.events.submit(() -> out("{\"event\":\"status\",\"broker\":" + b.brokerId + ",\"active\":" + b.isActive()
                    + ",\"controller\":" + b.activeControllerId + ",\"epoch\":" + b.epoch + ",\"session\":\"0x"
                    + Long.toHexString(b.zk.getSessionId()) + "\"}")).get();
            } else if (line.equals("quit")) {
                break;
            }
        }
        b.events.submit(() -> { b.zk.close(); return null; }).get();
        out("{\"event\":\"stopped\",\"broker\":" + b.brokerId + "}");
        System.exit(0);
    }
}
