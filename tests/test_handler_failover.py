"""Issue 3, failover: two handler processes serve the same units. A handler
that dies (SIGKILL) or freezes (SIGSTOP, no heartbeat) while holding orders:
every unfinished order it held goes to the other handler — visible in that
handler's queue through its API — none is in both queues, none is lost;
actions already acknowledged are not applied again, and the router's history
of each order shows every step once. A frozen handler that wakes up finds the
orders gone from its queue and its staff are refused (409, with the reason);
an action that still reaches the router from the old holder is refused there
too (409 naming the new holder). A router restart while a holding handler is
dead moves its orders after the grace period.

厦门 (350200), 青岛 (370200), 苏州 (320500) and 武汉 (420100) are this module's own areas."""
import signal
import socket
import time

import requests

from conftest import Service, complaint, wait_for

N = 40


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_handler(system, hid):
    port = free_port()
    h = Service(system, hid, {"KESU_HANDLER_ID": hid,
                              "KESU_HANDLER_HTTP": "127.0.0.1:%d" % port})
    h.port = port
    h.start()

    def live():
        hs = system.get("router", "/v1/handlers").json()["handlers"]
        return {x["handler_id"] for x in hs if x["last_seen_ms_ago"] < 2000} >= {"handler-1", hid}
    wait_for(live, timeout=20, what="%s and handler-1 live at the router" % hid)
    wait_for(lambda: requests.get(h.url("/v1/link"), headers=system.headers(),
                                  timeout=5).json()["router_reachable"] is True,
             timeout=20, what="%s hears the router" % hid)
    return h


def hcall(svc, method, path, token, system, body=None):
    return requests.request(method, svc.url(path), json=body, headers=system.headers(token),
                            timeout=15)


def submit_all(system, region, phone_prefix):
    nos = []
    for i in range(N):
        r = system.post("intake", "/v1/complaints", complaint(
            region=region, title="双端容灾%02d" % i,
            customer={"name": "容灾", "phone": "%s%04d" % (phone_prefix, i),
                      "home_region": region}))
        assert r.status_code == 201, r.text
        nos.append(r.json()["order_no"])
    pg = system.pg

    def all_dispatched():
        return pg.scalar("SELECT count(*) FROM router.work_orders WHERE order_no = ANY(%s) "
                         "AND state = 'dispatched'", (nos,)) == N
    wait_for(all_dispatched, timeout=60, what="all %d dispatched" % N)
    return nos


def holders(system, nos):
    return dict(system.pg.query("SELECT order_no, handler_id FROM router.work_orders "
                                "WHERE order_no = ANY(%s)", (nos,)))


def queue_of(svc, system, token, nos):
    r = hcall(svc, "GET", "/v1/queue", token, system)
    assert r.status_code == 200, r.text
    return [o["order_no"] for o in r.json()["orders"] if o["order_no"] in set(nos)]


def history(system, no):
    return system.pg.query("SELECT action, actor, action_id FROM router.order_history "
                           "WHERE order_no = %s ORDER BY seq", (no,))


def act(svc, system, token, no, body):
    r = hcall(svc, "POST", "/v1/orders/%s/actions" % no, token, system, body)
    assert r.status_code == 200, (no, body, r.text)
    return r.json()


def split_and_work(system, nos, other, token):
    """Both handlers hold orders; staff of `other` sign 4 of its orders
    (one also gets an interim reply) and close 2."""
    by = holders(system, nos)
    theirs = sorted(n for n in nos if by[n] == other.name)
    ours = sorted(n for n in nos if by[n] == "handler-1")
    assert theirs and ours, "the load was not shared: %r" % by
    assert len(theirs) >= 6, theirs
    # the copies are in the right queues before anyone acts
    wait_for(lambda: sorted(queue_of(other, system, token, nos)) == theirs,
             what="%s's queue" % other.name)
    signed, closed = theirs[:4], theirs[4:6]
    for no in signed:
        assert act(other, system, token, no, {"action": "sign"})["state"] == "handling"
    act(other, system, token, signed[0], {"action": "interim_reply",
                                          "answer": "已安排工程师上门。"})
    for no in closed:
        act(other, system, token, no, {"action": "close", "answer": "已处理完毕。"})
    return theirs, ours, signed, closed


def check_taken_over(system, nos, gone, token, theirs, ours, signed, closed):
    h1 = system["handler"]
    unfinished = [n for n in theirs if n not in closed]
    # every unfinished order the gone handler held now belongs to handler-1 …
    wait_for(lambda: all(holders(system, unfinished)[n] == "handler-1" for n in unfinished),
             timeout=15, what="the router gives %s's orders to handler-1" % gone.name)
    # moved without a second WorkOrderDispatched: one per order
    assert system.pg.scalar(
        "SELECT count(*) FROM router.outbox WHERE type = 'WorkOrderDispatched' "
        "AND order_no = ANY(%s)", (nos,)) == len(nos)
    # … and is in handler-1's queue, once; the closed ones are in no queue
    want = sorted(set(ours) | set(unfinished))
    wait_for(lambda: sorted(queue_of(h1, system, token, nos)) == want, timeout=20,
             what="handler-1's queue has every unfinished order")
    q = queue_of(h1, system, token, nos)
    assert len(q) == len(set(q))
    assert not set(q) & set(closed)
    assert system.pg.scalar("SELECT count(*) FROM router.work_orders WHERE order_no = ANY(%s) "
                            "AND state = 'closed'", (nos,)) == 2
    # the handler copy says who holds it now and who held it before
    for no in unfinished:
        o = hcall(h1, "GET", "/v1/orders/" + no, token, system).json()
        assert o["handler_id"] == "handler-1" and o["former_handlers"] == [gone.name], o
    # staff of handler-1 go on from where the others stopped: no step twice
    for no in signed:
        r = hcall(h1, "POST", "/v1/orders/%s/actions" % no, token, system, {"action": "sign"})
        assert r.status_code == 409, r.text  # already signed: the router says so
        # answer needs feedback first: a close with an answer is sign, feedback, answer, close
        r = act(h1, system, token, no, {"action": "close", "answer": "故障已排除。"})
        assert r["state"] == "closed", r
    for no in nos:
        steps = history(system, no)
        # no action applied twice (a composite close records its steps under one id)
        ids = [(s[2], s[0]) for s in steps if s[2]]
        assert len(ids) == len(set(ids)), (no, steps)
        names = [s[0] for s in steps]
        assert names.count("sign") <= 1 and names.count("close") <= 1, (no, steps)
        assert names[0] == "dispatch", (no, steps)
    assert [s[0] for s in history(system, signed[0])] == [
        "dispatch", "sign", "interim_reply", "feedback", "answer", "close"]
    # every action staff took was answered once by the router
    rows = system.pg.query("SELECT p.action_id::text, p.result_ok, "
                           "(SELECT count(*) FROM router.actions a "
                           " WHERE a.action_id = p.action_id::text) "
                           "FROM handler.pending_actions p WHERE p.order_no = ANY(%s)", (nos,))
    assert rows and all(r[2] == 1 for r in rows), rows
    return unfinished


def send_as_handler(system, hid, no, action, answer):
    """One Action on the router's dispatch socket as handler hid; its ActionResult."""
    import uuid

    import zmq
    from kesu.v1 import dispatch_pb2
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, hid.encode())
    s.setsockopt(zmq.LINGER, 0)
    s.connect("tcp://127.0.0.1:%d" % (7112 + system.offset))
    try:
        m = dispatch_pb2.HandlerMessage()
        a = m.action
        a.action_id = str(uuid.uuid4())
        a.order_no, a.action, a.actor, a.answer = no, action, "old-staff", answer
        a.at = int(time.time() * 1000)
        a.handler_id = hid
        s.send(m.SerializeToString())
        deadline = time.time() + 10
        while time.time() < deadline:
            if s.poll(500):
                r = dispatch_pb2.RouterMessage()
                r.ParseFromString(s.recv())
                if r.WhichOneof("msg") == "action_result" and \
                        r.action_result.action_id == a.action_id:
                    return r.action_result
        raise AssertionError("no ActionResult from the router")
    finally:
        s.close()


def test_killed_handler_orders_reach_the_other(system):
    region = "350200"
    token = system.token("xm-handler", "handler", region)
    h2 = start_handler(system, "handler-xm")
    try:
        nos = submit_all(system, region, "1375020")
        theirs, ours, signed, closed = split_and_work(system, nos, h2, token)
        h2.kill()  # SIGKILL, with orders signed, half-done and untouched
        unfinished = check_taken_over(system, nos, h2, token, theirs, ours, signed, closed)
        # an action still sent by the old holder's link reaches the router: refused, 409,
        # naming the holder now, and nothing is recorded on the order
        no = unfinished[-1]
        before = history(system, no)
        res = send_as_handler(system, "handler-xm", no, "interim_reply", "旧处理端的回复。")
        assert not res.ok and res.code == "conflict" and "handler-1" in res.message, res
        assert history(system, no) == before
    finally:
        h2.stop()


def test_frozen_handler_orders_move_and_it_drops_them_on_waking(system):
    region = "370200"
    token = system.token("qd-handler", "handler", region)
    h2 = start_handler(system, "handler-qd")
    try:
        nos = submit_all(system, region, "1375030")
        theirs, ours, signed, closed = split_and_work(system, nos, h2, token)
        h2.proc.send_signal(signal.SIGSTOP)  # frozen: no heartbeat
        try:
            unfinished = check_taken_over(system, nos, h2, token, theirs, ours, signed, closed)
        finally:
            h2.proc.send_signal(signal.SIGCONT)
        # awake: the orders are no longer in its queue, its staff are refused
        wait_for(lambda: queue_of(h2, system, token, nos) == [], timeout=20,
                 what="the woken handler's queue without the orders")
        for no in unfinished[:3]:
            r = hcall(h2, "POST", "/v1/orders/%s/actions" % no, token, system,
                      {"action": "interim_reply", "answer": "处理中。"})
            assert r.status_code == 409, r.text
            e = r.json()["error"]
            assert e["code"] == "conflict" and "handler-1" in e["message"], e
        # the refused ones never reached the router (signed[0]'s one is from before)
        for no in unfinished[:3]:
            replies = [s for s in history(system, no) if s[0] == "interim_reply"]
            assert len(replies) == (1 if no == signed[0] else 0), (no, replies)
    finally:
        h2.stop()
    log = h2.tail(1 << 20)
    assert "AddressSanitizer" not in log and "runtime error:" not in log, h2.log_path


def test_orders_sent_to_a_frozen_handler_go_to_the_other_and_stay_there(system):
    """A handler frozen (SIGSTOP) before it acknowledged what it was sent: after
    the heartbeat timeout the router gives those orders to handler-1. When the
    frozen one wakes it reads the stale dispatches queued meanwhile and does
    not take the orders back (not stored over handler-1's copy, not
    acknowledged); its staff's action on one is refused by the router."""
    region = "320500"  # 苏州
    token = system.token("sz-handler", "handler", region)
    h2 = start_handler(system, "handler-sz")
    h1 = system["handler"]
    pg = system.pg
    try:
        h2.proc.send_signal(signal.SIGSTOP)
        frozen = True
        t0 = time.time()
        nos = []
        for i in range(20):  # within the 3 s the router still counts on it
            r = system.post("intake", "/v1/complaints", complaint(
                region=region, title="冻结%02d" % i,
                customer={"name": "冻结", "phone": "137505%05d" % i, "home_region": region}))
            assert r.status_code == 201, r.text
            nos.append(r.json()["order_no"])
        assert time.time() - t0 < 2.5, "too slow to catch the frozen handler alive"
        wait_for(lambda: pg.scalar("SELECT count(*) FROM router.work_orders WHERE order_no = "
                                   "ANY(%s) AND state = 'dispatched'", (nos,)) == len(nos),
                 timeout=40, what="every order dispatched (acknowledged)")
        assert set(holders(system, nos).values()) == {"handler-1"}
        # the case under test happened: some went to the frozen handler first
        first = pg.query("SELECT DISTINCT ON (order_no) order_no, handler_id, acked_at IS NULL "
                         "FROM router.dispatches WHERE order_no = ANY(%s) ORDER BY order_no, seq",
                         (nos,))
        stale = sorted(r[0] for r in first if r[1] == "handler-sz")
        assert stale and all(r[2] for r in first if r[1] == "handler-sz"), first
        wait_for(lambda: sorted(queue_of(h1, system, token, nos)) == sorted(nos),
                 what="handler-1's queue has all of them")
        h2.proc.send_signal(signal.SIGCONT)
        frozen = False

        def back():
            hs = system.get("router", "/v1/handlers").json()["handlers"]
            return any(x["handler_id"] == "handler-sz" and x["last_seen_ms_ago"] < 1500
                       for x in hs)
        wait_for(back, timeout=20, what="the woken handler back at the router")
        # past the catching-up second and a resend period: nothing moved back
        deadline = time.time() + 4
        while time.time() < deadline:
            assert queue_of(h2, system, token, nos) == []
            time.sleep(0.5)
        assert sorted(queue_of(h1, system, token, nos)) == sorted(nos)
        acked = dict(pg.query("SELECT order_no, dispatch_id::text FROM router.dispatches "
                              "WHERE order_no = ANY(%s) AND acked_at IS NOT NULL", (nos,)))
        copies = pg.query("SELECT order_no, handler_id, dispatch_id::text, former_handlers "
                          "FROM handler.orders WHERE order_no = ANY(%s)", (nos,))
        assert len(copies) == len(nos)
        assert all(c[1] == "handler-1" and c[2] == acked[c[0]] and c[3] == [] for c in copies), \
            copies
        # no acknowledgement of a stale dispatch came from the woken handler
        assert pg.scalar("SELECT count(*) FROM router.dispatches WHERE order_no = ANY(%s) "
                         "AND handler_id = 'handler-sz' AND acked_at IS NOT NULL", (nos,)) == 0
        # its staff cannot act on one; handler-1's can, once
        no = stale[0]
        r = hcall(h2, "POST", "/v1/orders/%s/actions" % no, token, system, {"action": "sign"})
        assert r.status_code == 403, r.text
        assert "handler" in r.json()["error"]["message"] or r.json()["error"]["code"] == \
            "forbidden", r.text
        assert act(h1, system, token, no, {"action": "sign"})["state"] == "handling"
        assert [s[0] for s in history(system, no)] == ["dispatch", "sign"]
    finally:
        if frozen:
            h2.proc.send_signal(signal.SIGCONT)
        h2.stop()
    log = h2.tail(1 << 20)
    assert "AddressSanitizer" not in log and "runtime error:" not in log, h2.log_path


def test_router_restart_moves_orders_of_a_handler_that_did_not_come_back(system):
    """The router restarts while a handler holding acknowledged orders is dead:
    after the grace period (the 3 s handler timeout) those orders go to
    handler-1, with their history, once; WorkOrderDispatched is not repeated."""
    region = "420100"  # 武汉
    token = system.token("wh-handler", "handler", region)
    h2 = start_handler(system, "handler-wh")
    h1 = system["handler"]
    pg = system.pg
    try:
        nos = submit_all(system, region, "1375040")
        by = holders(system, nos)
        theirs = sorted(n for n in nos if by[n] == "handler-wh")
        assert theirs, by
        wait_for(lambda: sorted(queue_of(h2, system, token, nos)) == theirs,
                 what="handler-wh's queue")
        signed = theirs[0]
        assert act(h2, system, token, signed, {"action": "sign"})["state"] == "handling"
        system["router"].kill()
        h2.kill()
        system["router"].start()
        wait_for(lambda: set(holders(system, theirs).values()) == {"handler-1"}, timeout=30,
                 what="handler-wh's orders given to handler-1 after the router's restart")
        wait_for(lambda: sorted(queue_of(h1, system, token, nos)) == sorted(nos), timeout=20,
                 what="handler-1's queue has every order")
        assert pg.scalar("SELECT count(*) FROM router.outbox WHERE type = 'WorkOrderDispatched' "
                         "AND order_no = ANY(%s)", (nos,)) == len(nos)
        o = hcall(h1, "GET", "/v1/orders/" + signed, token, system).json()
        assert o["handler_id"] == "handler-1" and o["former_handlers"] == ["handler-wh"], o
        r = hcall(h1, "POST", "/v1/orders/%s/actions" % signed, token, system, {"action": "sign"})
        assert r.status_code == 409, r.text  # signed before the failover: the router knows
        r = act(h1, system, token, signed, {"action": "close", "answer": "已处理。"})
        assert r["state"] == "closed", r
        assert [s[0] for s in history(system, signed)] == [
            "dispatch", "sign", "feedback", "answer", "close"]
    finally:
        h2.stop()
