"""Issue 3: queue priority (R-15), repeat contacts (R-02), and the handler's
review findings (its own pending actions only; times staff see come from the
service clock)."""
import datetime
import uuid

from conftest import complaint, wait_for


def submit(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code == 201, r.text
    return r.json()["order_no"]


def rorder(system, no):
    return system.get("router", "/v1/orders/" + no).json()


def wait_dispatched(system, no):
    wait_for(lambda: rorder(system, no).get("state") == "dispatched", what="%s dispatched" % no)


def hclose(system, no):
    r = system.post("handler", "/v1/orders/%s/actions" % no,
                    {"action": "close", "answer": "已处理完毕。"})
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text


def test_queue_by_priority_then_due_time(system):
    region = "440106"  # 天河区: this test's own area
    token = system.token("gz-th-handler", "handler", region)

    def cust(phone, level=""):
        c = {"name": "优先", "phone": phone, "home_region": region}
        if level:
            c["level"] = level
        return c
    a = submit(system, region=region, customer=cust("13700000001"), tier="general")
    b = submit(system, region=region, customer=cust("13700000002"), tier="national")
    c = submit(system, region=region, customer=cust("13700000003"), tier="provincial")
    d = submit(system, region=region, customer=cust("13700000004", "VIP"), tier="general")
    e = submit(system, region=region, customer=cust("13700000005"), tier="general")
    mine = {a, b, c, d, e}

    def queue():
        q = system.get("handler", "/v1/queue", token=token).json()["orders"]
        return [o for o in q if o["order_no"] in mine]
    q = wait_for(lambda: (lambda x: x if len(x) == 5 else None)(queue()), what="five in queue")
    # VIP first, then national > provincial > general; same priority: due time
    assert [o["order_no"] for o in q] == [d, b, c, a, e], q
    assert [o["priority"] for o in q] == [11, 3, 2, 1, 1]
    assert rorder(system, d)["priority"] == 11 and rorder(system, a)["priority"] == 1


def test_repeat_contact_is_linked_to_the_open_order(system):
    region = "330106"  # 西湖区
    phone = "1360000%04d" % (uuid.uuid4().int % 10000)
    cu = {"name": "重复", "phone": phone, "home_region": region}
    first = submit(system, region=region, customer=cu, business_type="broadband")
    wait_dispatched(system, first)
    again = submit(system, region=region, customer=cu, business_type="broadband")
    other = submit(system, region=region, customer=cu, business_type="mobile")
    wait_dispatched(system, again)
    wait_dispatched(system, other)
    o = rorder(system, again)
    assert o["repeat"] is True and o["repeat_of"] == first, o
    f = rorder(system, first)
    assert f["repeat"] is False and f["repeat_of"] is None
    assert f["repeat_count"] == 1 and f["repeats"] == [again], f
    x = rorder(system, other)
    assert x["repeat"] is False and x["repeat_of"] is None  # another business type
    # once the matter is closed, a new contact is a new matter
    hclose(system, first)
    hclose(system, again)
    later = submit(system, region=region, customer=cu, business_type="broadband")
    wait_dispatched(system, later)
    assert rorder(system, later)["repeat_of"] is None
    assert rorder(system, first)["repeat_count"] == 1


def test_handler_resends_only_its_own_pending_actions(system):
    pg = system.pg
    no = submit(system, region="330106",
                customer={"name": "别端", "phone": "13600009999", "home_region": "330106"},
                business_type="iptv")
    wait_dispatched(system, no)
    foreign, own = str(uuid.uuid4()), str(uuid.uuid4())
    for aid, hid in ((foreign, "handler-9"), (own, "handler-1")):
        pg.query("INSERT INTO handler.pending_actions (action_id, order_no, action, actor, "
                 "created_at, handler_id) VALUES (%s, %s, 'sign', 'e2e', now(), %s)",
                 (aid, no, hid))
    wait_for(lambda: pg.scalar("SELECT done_at IS NOT NULL FROM handler.pending_actions "
                               "WHERE action_id = %s", (own,)), what="own action answered")
    row = pg.query("SELECT sent_at, done_at FROM handler.pending_actions WHERE action_id = %s",
                   (foreign,))[0]
    assert row == (None, None), "handler-1 sent handler-9's action: %r" % (row,)
    assert pg.scalar("SELECT count(*) FROM router.actions WHERE action_id = %s", (foreign,)) == 0


def test_handler_times_follow_the_service_clock(system):
    no = submit(system, region="330106",
                customer={"name": "时钟", "phone": "13600008888", "home_region": "330106"},
                business_type="fixed")
    wait_dispatched(system, no)
    wait_for(lambda: system.get("handler", "/v1/orders/" + no).ok, what="at the handler")
    hclose(system, no)
    pg = system.pg
    created, done = pg.query("SELECT created_at, done_at FROM handler.pending_actions "
                             "WHERE order_no = %s AND action = 'close'", (no,))[0]
    closed = pg.scalar("SELECT closed_at FROM handler.orders WHERE order_no = %s", (no,))
    # both from the service clock (the test clock is far from the wall clock)
    assert abs((done - created).total_seconds()) < 60, (created, done)
    assert abs((closed - created).total_seconds()) < 60, (created, closed)
    wall = datetime.datetime.now(datetime.timezone.utc)
    if abs((wall - created).total_seconds()) > 600:
        assert abs((wall - done).total_seconds()) > 300


def test_action_lost_with_its_connection_is_refused_and_never_applied(system):
    """The insert of a staff action dies with its connection (before commit):
    the handler looks the action up once reconnected, finds nothing, answers
    503 — and nothing is sent later."""
    pg = system.pg
    no = submit(system, region="330106",
                customer={"name": "断线", "phone": "13600007777", "home_region": "330106"},
                business_type="iptv")
    wait_dispatched(system, no)
    wait_for(lambda: system.get("handler", "/v1/orders/" + no).ok, what="at the handler")
    pg.query("CREATE FUNCTION handler.e2e_drop_link() RETURNS trigger LANGUAGE plpgsql AS $$ "
             "BEGIN IF NEW.order_no = '%s' THEN PERFORM pg_terminate_backend(pg_backend_pid()); "
             "END IF; RETURN NEW; END $$" % no)
    pg.query("CREATE TRIGGER e2e_drop_link BEFORE INSERT ON handler.pending_actions "
             "FOR EACH ROW EXECUTE FUNCTION handler.e2e_drop_link()")
    try:
        r = system.post("handler", "/v1/orders/%s/actions" % no, {"action": "sign"})
    finally:
        pg.query("DROP TRIGGER e2e_drop_link ON handler.pending_actions")
        pg.query("DROP FUNCTION handler.e2e_drop_link()")
    assert r.status_code == 503, r.text
    assert pg.scalar("SELECT count(*) FROM handler.pending_actions WHERE order_no = %s",
                     (no,)) == 0
    assert rorder(system, no)["wf_state"] == "dispatched"
    # the handler still works afterwards
    r = system.post("handler", "/v1/orders/%s/actions" % no, {"action": "sign"})
    assert r.status_code == 200, r.text


def test_gravity_urgency_breadth_jump_ahead_of_older_orders(system):
    """R-15: the handler's queue uses the router's priority — tier + VIP +
    gravity 5 + urgency 4 + breadth 3 — then due time. A major (gravity)
    complaint accepted last comes first."""
    region = "440103"  # 荔湾区: this test's own area
    token = system.token("gz-lw-handler", "handler", region)

    def cust(phone):
        return {"name": "紧急", "phone": phone, "home_region": region}
    plain = submit(system, region=region, customer=cust("13700001001"), tier="general")
    system.advance(60)
    wide = submit(system, region=region, customer=cust("13700001002"), tier="general",
                  breadth=True)
    system.advance(60)
    urgent = submit(system, region=region, customer=cust("13700001003"), tier="general",
                    urgency=True)
    system.advance(60)
    grave = submit(system, region=region, customer=cust("13700001004"), tier="general",
                   gravity=True)
    plain2 = submit(system, region=region, customer=cust("13700001005"), tier="general")
    mine = {plain, wide, urgent, grave, plain2}

    def queue():
        q = system.get("handler", "/v1/queue", token=token).json()["orders"]
        return [o for o in q if o["order_no"] in mine]
    q = wait_for(lambda: (lambda x: x if len(x) == 5 else None)(queue()), what="five in queue")
    assert [o["order_no"] for o in q] == [grave, urgent, wide, plain, plain2], q
    assert [o["priority"] for o in q] == [6, 5, 4, 1, 1]
    # the same number the router computed
    assert [rorder(system, o["order_no"])["priority"] for o in q] == [6, 5, 4, 1, 1]
    # the order's page says why
    o = system.get("handler", "/v1/orders/" + grave, token=token).json()
    assert o["complaint"]["gravity"] is True and o["complaint"]["priority"] == 6, o
