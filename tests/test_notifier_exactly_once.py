"""Issue 5, R-40: exactly one send per (event, recipient, channel) even when the
notifier is SIGKILLed mid-send. The sender records each attempt ('sending') in
notify.deliveries before the request goes out; on restart the rows found
'sending' are resent with the same Idempotency-Key, and the gateway — like a
real provider — delivers each key once."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import complaint, wait_for

N = 500
REGION = "330106"  # 杭州市西湖区: this test's orders only


def test_sigkill_mid_send_delivers_each_notification_once(system):
    pg = system.pg
    gw = system.sms
    notifier = system["notifier"]
    requests_before = gw.request_count()
    gw.delay = 0.3  # a slow provider: many transfers in flight at the kill
    try:
        local = threading.local()
        orders = []
        lock = threading.Lock()

        def submit(i):
            s = getattr(local, "s", None)
            if s is None:
                s = local.s = requests.Session()
            body = complaint(region=REGION,
                             customer={"name": "客户%d" % i, "phone": "137%08d" % i,
                                       "home_region": REGION, "address": "测试地址%d号" % i},
                             title="通知测试%d" % i)
            r = s.post(system["intake"].url("/v1/complaints"), json=body,
                       headers=system.headers(), timeout=30)
            assert r.status_code == 201, r.text
            with lock:
                orders.append(r.json()["order_no"])

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(submit, range(N)))
        orders = set(orders)
        assert len(orders) == N

        # Kill while the gateway is busy with this batch.
        wait_for(lambda: gw.request_count() - requests_before >= 150, timeout=60, interval=0.01,
                 what="150 requests at the gateway")
        in_flight = pg.scalar("SELECT count(*) FROM notify.deliveries WHERE status = 'sending' "
                              "AND region = %s", (REGION,))
        notifier.kill()
        left_sending = pg.scalar("SELECT count(*) FROM notify.deliveries "
                                 "WHERE status = 'sending' AND region = %s", (REGION,))
        sent_before_restart = pg.scalar("SELECT count(*) FROM notify.deliveries "
                                        "WHERE status = 'sent' AND region = %s", (REGION,))
        assert in_flight > 0 and left_sending > 0, (in_flight, left_sending)
        assert sent_before_restart < N
        time.sleep(0.5)
        notifier.start()

        def batch():
            return [m for m in gw.messages() if m["body"].get("order_no") in orders]

        wait_for(lambda: pg.scalar("SELECT count(*) FROM notify.deliveries "
                                   "WHERE status = 'sent' AND region = %s", (REGION,)) == N,
                 timeout=120, what="500 deliveries sent")
        time.sleep(1)  # anything sent twice would arrive now
        delivered = batch()
        keys = [m["headers"]["Idempotency-Key"] for m in delivered]
        assert len(delivered) == N
        assert len(set(keys)) == N                            # distinct keys = 500
        assert {m["body"]["order_no"] for m in delivered} == orders
        counts = gw.keys()
        batch_keys = {k: counts[k] for k in keys}
        assert len(batch_keys) == N
        # Every key was delivered once; the ones in flight at the kill were
        # requested again with the same key (the provider deduped them).
        resent = sum(c - 1 for c in batch_keys.values())
        assert resent >= 1, "the kill should have caught transfers in flight"
        # Every request about these orders carried one of their keys: nothing was sent
        # for them under another key. (The system is shared with the other tests: staff
        # messages of theirs may reach the gateway meanwhile, so the count is of ours.)
        ours = [k for k, o in gw.requests_since(requests_before) if o in orders]
        assert len(ours) == sum(batch_keys.values()) and set(ours) == set(batch_keys)
        rows = pg.query("SELECT delivery_key, status, attempts FROM notify.deliveries "
                        "WHERE region = %s", (REGION,))
        assert len(rows) == N
        assert {r[1] for r in rows} == {"sent"}
        assert {r[0] for r in rows} == set(keys)
        assert max(r[2] for r in rows) >= 2  # the resent ones record their second attempt
        assert pg.scalar("SELECT count(*) FROM notify.deliveries WHERE status = 'sending'") == 0

        # Close this test's orders so later tests' clock jumps do not make the
        # SLA watcher warn about 500 more orders.
        wait_for(lambda: pg.scalar("SELECT count(*) FROM handler.orders WHERE region = %s",
                                   (REGION,)) == N, timeout=60, what="orders at the handler")

        def close(no):
            s = getattr(local, "s", None) or requests.Session()
            local.s = s
            r = s.post(system["handler"].url("/v1/orders/%s/actions" % no),
                       json={"action": "close", "answer": "测试结束，关闭。"},
                       headers=system.headers(), timeout=30)
            assert r.status_code in (200, 202), r.text

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(close, sorted(orders)))
        wait_for(lambda: pg.scalar("SELECT count(*) FROM router.work_orders WHERE region = %s"
                                   " AND state = 'closed'", (REGION,)) == N, timeout=60,
                 what="500 closed")
    finally:
        gw.delay = 0.0
