"""Issue 5, R-40: retries with back-off on 5xx, attempts recorded, the
dead-letter list and a retry from it — each delivered once."""
from conftest import complaint, wait_for


def sms_delivery(system, order_no):
    r = system.get("notifier", "/v1/deliveries?order_no=" + order_no)
    assert r.status_code == 200, r.text
    d = [x for x in r.json()["deliveries"] if x["channel"] == "sms"
         and x["event_type"] == "ComplaintReceived"]
    return d[0] if d else None


def submit(system, phone):
    r = system.post("intake", "/v1/complaints",
                    complaint(region="110105", customer={"name": "赵六", "phone": phone,
                                                         "home_region": "110105",
                                                         "address": "北京市朝阳区建国路1号"}))
    assert r.status_code == 201, r.text
    return r.json()["order_no"]


def test_gateway_fails_three_times_then_recovers(system):
    gw = system.sms
    phone = "13511112222"
    gw.fail_to.add(phone)
    try:
        no = submit(system, phone)
        # back-off runs on the controllable clock: 1 s, 2 s, 4 s (± 20 %)
        for n in (1, 2, 3):
            wait_for(lambda: (sms_delivery(system, no) or {}).get("attempts") == n and
                     sms_delivery(system, no)["status"] == "pending", what="attempt %d" % n)
            if n < 3:
                system.advance(2 ** n)
        d = sms_delivery(system, no)
        assert "503" in d["last_error"]
        assert gw.for_order(no) == []
        gw.fail_to.discard(phone)
        system.advance(5)
        wait_for(lambda: sms_delivery(system, no)["status"] == "sent", what="sent")
        d = sms_delivery(system, no)
        assert d["attempts"] == 4
        assert len(gw.for_order(no)) == 1
    finally:
        gw.fail_to.discard(phone)


def test_dead_letter_then_retry_delivers_once(system):
    gw = system.sms
    phone = "13533334444"
    gw.fail_to.add(phone)
    try:
        no = submit(system, phone)
        wait_for(lambda: (sms_delivery(system, no) or {}).get("attempts") == 1,
                 what="first attempt")
        for n in range(2, 9):
            system.advance(80)  # past the longest back-off (60 s + 20 %)
            wait_for(lambda: sms_delivery(system, no)["attempts"] == n and
                     sms_delivery(system, no)["status"] in ("pending", "dead"),
                     timeout=15, what="attempt %d" % n)
        d = sms_delivery(system, no)
        assert d["status"] == "dead" and d["attempts"] == 8, d
        dead = system.get("notifier", "/v1/deliveries?status=dead").json()["deliveries"]
        assert d["id"] in [x["id"] for x in dead]
        assert gw.for_order(no) == []
        # not retryable while it is not failed or dead
        gw.fail_to.discard(phone)
        r = system.post("notifier", "/v1/deliveries/%d/retry" % d["id"], {})
        assert r.status_code == 200, r.text
        wait_for(lambda: sms_delivery(system, no)["status"] == "sent", what="sent after retry")
        r = system.post("notifier", "/v1/deliveries/%d/retry" % d["id"], {})
        assert r.status_code == 409
        assert len(gw.for_order(no)) == 1
        assert gw.keys()[gw.for_order(no)[0]["headers"]["Idempotency-Key"]] == 9
    finally:
        gw.fail_to.discard(phone)


def test_rate_limit_per_recipient(system):
    """A storm to one number: 30 a minute (KESU_NOTIFY_RATE_PER_MINUTE), the
    rest wait for the next minute — not counted as attempts, sent once."""
    gw = system.sms
    now_ms = system.get("intake", "/v1/admin/clock").json()["now_ms"]
    system.advance((60000 - now_ms % 60000 + 1000) / 1000.0)  # just after a minute starts
    now_ms = system.get("intake", "/v1/admin/clock").json()["now_ms"]
    system.pg.query(
        "INSERT INTO notify.deliveries (delivery_key, order_no, event_type, recipient, channel,"
        " body, status, next_attempt_at, recipient_kind)"
        " SELECT 'rate-test:' || i, 'RATE-TEST', 'Test', '13700009999', 'sms', '第' || i || '条',"
        " 'pending', to_timestamp(%s / 1000.0), 'handler' FROM generate_series(1, 35) i",
        (now_ms,))

    def count(status):
        return system.pg.scalar("SELECT count(*) FROM notify.deliveries WHERE order_no ="
                                " 'RATE-TEST' AND status = %s", (status,))
    wait_for(lambda: count("sent") == 30 and count("pending") == 5, what="30 sent, 5 held")
    held = system.pg.query("SELECT attempts, last_error, extract(epoch from next_attempt_at)"
                           " * 1000 FROM notify.deliveries WHERE order_no = 'RATE-TEST'"
                           " AND status = 'pending'")
    assert {h[0] for h in held} == {0}
    assert all("rate limit" in h[1] for h in held)
    assert {int(h[2]) for h in held} == {now_ms - now_ms % 60000 + 60000}
    assert len(gw.for_order("RATE-TEST")) == 30
    system.advance(60)
    wait_for(lambda: count("sent") == 35, what="the rest in the next minute")
    assert len(gw.for_order("RATE-TEST")) == 35
    assert len({m["headers"]["Idempotency-Key"] for m in gw.for_order("RATE-TEST")}) == 35
