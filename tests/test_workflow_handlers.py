"""Issue 3 review findings: several handler processes serving the same unit.

A second kesu-handler (handler-2, sharing the handler schema — one schema per
service) runs beside handler-1. Across a router SIGKILL in the middle of a
load, every order must end with exactly one acknowledged dispatch, the one the
handlers' copy carries, and every dispatch a handler received must be in the
router's journal (rows are written before the send). An action from a handler
that does not hold the order is refused.
"""
import signal
import socket
import threading
import time

import pytest

from conftest import Service, complaint, wait_for


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def handler2(system):
    port = free_port()
    h = Service(system, "handler-2", {"KESU_HANDLER_ID": "handler-2",
                                      "KESU_HANDLER_HTTP": "127.0.0.1:%d" % port})
    h.port = port
    h.start()
    wait_for(lambda: system.get("router", "/v1/handlers").json()["count"] >= 2,
             what="two handlers at the router")
    yield h
    h.stop()
    # orders in flight to handler-2 go back to handler-1 once it is gone
    time.sleep(3.5)


def submit_many(system, n, phone_prefix):
    nos, lock = [], threading.Lock()

    def worker(k):
        for i in range(k, n, 8):
            body = complaint(customer={"name": "多端", "phone": "%s%04d" % (phone_prefix, i),
                                       "home_region": "310115"})
            for _ in range(50):
                try:
                    r = system.post("intake", "/v1/complaints", body)
                except Exception:
                    time.sleep(0.1)
                    continue
                if r.status_code == 201:
                    with lock:
                        nos.append(r.json()["order_no"])
                    break
                time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    return threads, nos


def test_one_acknowledged_dispatch_per_order_across_router_kill(system, handler2):
    n = 400
    threads, nos = submit_many(system, n, "1391234")
    wait_for(lambda: len(nos) >= n // 3, what="a third of the load in")
    # handler-2 frozen: what it was sent stays unacknowledged (in flight)
    # while the router dies; it wakes up within the handler timeout
    handler2.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.6)
        system["router"].kill()
        system["router"].start()
    finally:
        handler2.proc.send_signal(signal.SIGCONT)
    for t in threads:
        t.join()
    assert len(nos) == n
    # the restart found dispatches never acknowledged and kept them for
    # their handler (the case under test happened)
    import re
    kept = [int(k) for k in re.findall(r"\((\d+) kept for the handler",
                                        system["router"].tail(1 << 20))]
    assert kept and kept[-1] > 0, kept
    pg = system.pg

    def all_dispatched():
        return pg.scalar("SELECT count(*) FROM router.work_orders WHERE order_no = ANY(%s) "
                         "AND state = 'dispatched'", (nos,)) == n
    wait_for(all_dispatched, timeout=60, what="every order dispatched")

    rows = pg.query(
        "SELECT w.order_no, w.handler_id, "
        "  (SELECT count(*) FROM router.dispatches d WHERE d.order_no = w.order_no "
        "     AND d.acked_at IS NOT NULL), "
        "  (SELECT d.dispatch_id::text FROM router.dispatches d WHERE d.order_no = w.order_no "
        "     AND d.acked_at IS NOT NULL ORDER BY d.seq LIMIT 1), "
        "  (SELECT d.handler_id FROM router.dispatches d WHERE d.order_no = w.order_no "
        "     AND d.acked_at IS NOT NULL ORDER BY d.seq LIMIT 1), "
        "  (SELECT count(*) FROM router.dispatches d WHERE d.order_no = w.order_no) "
        "FROM router.work_orders w WHERE w.order_no = ANY(%s)", (nos,))
    assert len(rows) == n
    bad = [r for r in rows if r[2] != 1]
    assert not bad, "orders without exactly one acknowledged dispatch: %r" % bad[:10]
    assert all(r[1] == r[4] for r in rows), "work order's handler is not the acked dispatch's"
    # the copy the handlers keep carries the acknowledged dispatch
    copies = dict(pg.query("SELECT order_no, dispatch_id::text FROM handler.orders "
                           "WHERE order_no = ANY(%s)", (nos,)))
    wrong = [(r[0], r[3], copies.get(r[0])) for r in rows if copies.get(r[0]) != r[3]]
    assert not wrong, "handler copy holds another dispatch than the acked one: %r" % wrong[:10]
    # both handlers took part (the load was shared)
    per_handler = dict(pg.query("SELECT handler_id, count(*) FROM router.work_orders "
                                "WHERE order_no = ANY(%s) GROUP BY 1", (nos,)))
    assert set(per_handler) <= {"handler-1", "handler-2"}
    # a dispatch row is written before its send: at most one unacked row per
    # order is superseded by the acked one, never more than two rows
    assert max(r[5] for r in rows) <= 2, [r for r in rows if r[5] > 2][:5]


def test_action_from_a_handler_not_holding_the_order_is_refused(system, handler2):
    r = system.post("intake", "/v1/complaints",
                    complaint(customer={"name": "多端", "phone": "13912350001",
                                        "home_region": "310115"}))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    pg = system.pg
    # (the router creates the order asynchronously: no row yet is "not yet")
    wait_for(lambda: (pg.query("SELECT state FROM router.work_orders WHERE order_no = %s",
                               (no,)) or [[None]])[0][0] == "dispatched", what="dispatched")
    holder = pg.scalar("SELECT handler_id FROM router.work_orders WHERE order_no = %s", (no,))
    holder_svc = system["handler"] if holder == "handler-1" else handler2
    other_svc = handler2 if holder == "handler-1" else system["handler"]
    import requests
    h = system.headers()
    r = requests.post(other_svc.url("/v1/orders/%s/actions" % no), json={"action": "sign"},
                      headers=h, timeout=10)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert pg.scalar("SELECT wf_state FROM router.work_orders WHERE order_no = %s",
                     (no,)) == "dispatched"
    r = requests.post(holder_svc.url("/v1/orders/%s/actions" % no), json={"action": "sign"},
                      headers=h, timeout=10)
    assert r.status_code == 200, r.text
    assert pg.scalar("SELECT wf_state FROM router.work_orders WHERE order_no = %s",
                     (no,)) == "handling"
