import org.apache.zookeeper.*;
import org.apache.zookeeper.data.Stat;
import java.util.*;
import java.util.concurrent.*;

/** The Kafka controller's ZooKeeper pattern, with the ZooKeeper client Kafka embeds: N partition-state
 * writes, at most K in flight (Kafka's zookeeper.max.in.flight.requests, 10; 1 shows the latency of its
 * one-at-a-time calls), each a multi(check of the controller epoch znode, setData) as Kafka wraps every
 * controller write (-Dplain=1: a plain setData), then N getData. Args: hosts N [K]. Run by
 * tests/kafka/bench_controller_ops.py. */
public class ControllerOps {
    public static void main(String[] a) throws Exception {
        String hosts = a[0]; int n = Integer.parseInt(a[1]); int inflight = a.length > 2 ? Integer.parseInt(a[2]) : 10;
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 10000, e -> { if (e.getState() == Watcher.Event.KeeperState.SyncConnected) up.countDown(); });
        up.await();
        String root = "/ops-" + System.nanoTime();
        zk.create(root, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(root + "/epoch", "1".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        byte[] state = "{\"controller_epoch\":1,\"leader\":1,\"version\":1,\"leader_epoch\":0,\"isr\":[1,2,3]}".getBytes();
        for (int i = 0; i < n; i++) zk.create(root + "/p" + i, state, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (int round = 0; round < 3; round++) {
            Semaphore sem = new Semaphore(inflight); CountDownLatch done = new CountDownLatch(n);
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) {
                sem.acquire();
                if (System.getProperty("plain") != null) {
                    zk.setData(root + "/p" + i, state, -1, (rc, path, ctx, st) -> { sem.release(); done.countDown(); }, null);
                } else {
                List<Op> ops = List.of(Op.check(root + "/epoch", 0), Op.setData(root + "/p" + i, state, -1));
                zk.multi(ops, (rc, path, ctx, res) -> { sem.release(); done.countDown(); }, null);
                }
            }
            done.await();
            long t1 = System.nanoTime();
            Semaphore sem2 = new Semaphore(inflight); CountDownLatch done2 = new CountDownLatch(n);
            for (int i = 0; i < n; i++) {
                sem2.acquire();
                zk.getData(root + "/p" + i, false, (rc, path, ctx, data, stat) -> { sem2.release(); done2.countDown(); }, null);
            }
            done2.await();
            long t2 = System.nanoTime();
            System.out.printf("round %d: %d %s in %.2f s (%.1f ms each at %d in flight); %d getData in %.2f s%n",
                round, n, System.getProperty("plain") != null ? "setData" : "multi(check,setData)", (t1 - t0) / 1e9, (t1 - t0) / 1e6 / n * inflight, inflight, n, (t2 - t1) / 1e9);
        }
        zk.close();
    }
}
