// `coord compat`'s Java client battery: ZooKeeper's own Java client (Debian's zookeeper.jar, 3.8)
// against an endpoint. Run as a single source file (java -cp zookeeper.jar CompatBattery.java HOSTS BASE);
// prints one canonical "key=value" line per observation (no zxids, times or session ids), which
// coord/compat.py compares with ZooKeeper 3.8's answers or a reference server's.
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class CompatBattery {
    static void out(String k, Object v) {
        System.out.println(k + "=" + v);
    }

    static String code(Exception e) {
        return e instanceof KeeperException ? ((KeeperException) e).code().name() : e.getClass().getSimpleName();
    }

    interface Step {
        Object run() throws Exception;
    }

    static void step(String k, Step s) {
        try {
            out(k, s.run());
        } catch (Exception e) {
            out(k, code(e));
        }
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        String base = args[1];
        CountDownLatch connected = new CountDownLatch(1);
        LinkedBlockingQueue<String> events = new LinkedBlockingQueue<>();
        ZooKeeper zk = new ZooKeeper(hosts, 10000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        if (!connected.await(30, TimeUnit.SECONDS)) {
            out("connect", "timeout");
            System.exit(2);
        }
        Watcher w = e -> events.add(e.getType() + " " + e.getPath().substring(base.length()));
        step("create", () -> zk.create(base + "/j", "v1".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.PERSISTENT).substring(base.length()));
        step("create_again", () -> zk.create(base + "/j", "x".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.PERSISTENT));
        step("get", () -> {
            Stat st = new Stat();
            byte[] d = zk.getData(base + "/j", w, st);
            return new String(d) + " v" + st.getVersion() + " len" + st.getDataLength();
        });
        step("set", () -> zk.setData(base + "/j", "v2".getBytes(), 0).getVersion());
        step("event", () -> events.poll(10, TimeUnit.SECONDS));
        step("set_bad_version", () -> zk.setData(base + "/j", "v3".getBytes(), 7));
        step("sequential", () -> {
            List<String> names = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                String p = zk.create(base + "/j/s-", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                        CreateMode.PERSISTENT_SEQUENTIAL);
                names.add(p.substring(p.lastIndexOf('/') + 1));
            }
            return names;
        });
        step("ephemeral_owner", () -> {
            zk.create(base + "/j/e", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            return zk.exists(base + "/j/e", false).getEphemeralOwner() == zk.getSessionId();
        });
        step("children", () -> {
            List<String> kids = zk.getChildren(base + "/j", w);
            Collections.sort(kids);
            return kids;
        });
        step("child_event", () -> {
            zk.create(base + "/j/c", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            return events.poll(10, TimeUnit.SECONDS);
        });
        step("multi", () -> {
            List<String> r = new ArrayList<>();
            for (OpResult o : zk.multi(Arrays.asList(
                    Op.create(base + "/m", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.setData(base + "/m", "x".getBytes(), 0)))) {
                r.add(o.getClass().getSimpleName());
            }
            return r;
        });
        step("multi_fails", () -> zk.multi(Arrays.asList(
                Op.create(base + "/m2", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.check(base + "/m", 9))));
        step("multi_rolled_back", () -> zk.exists(base + "/m2", false) == null);
        step("persistent_recursive_watch", () -> {
            zk.addWatch(base + "/m", w, AddWatchMode.PERSISTENT_RECURSIVE);
            zk.create(base + "/m/deep", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            return events.poll(10, TimeUnit.SECONDS);
        });
        step("container", () -> zk.create(base + "/ct", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.CONTAINER).substring(base.length()));
        step("delete_not_empty", () -> {
            zk.delete(base + "/j", -1);
            return "ok";
        });
        step("sync", () -> {
            CountDownLatch done = new CountDownLatch(1);
            int[] rc = {99};
            zk.sync(base, (r, p, c) -> {
                rc[0] = r;
                done.countDown();
            }, null);
            done.await(10, TimeUnit.SECONDS);
            return rc[0];
        });
        step("get_missing", () -> zk.getData(base + "/nope", false, null));
        zk.close();
    }
}
