"""Issue 2: one schema and one role per service — no role can read another
service's tables; tokens carry a role and a unit scope."""
import psycopg2
import pytest

from conftest import complaint, wait_for

PAIRS = [("router", "intake.complaints"), ("analytics", "router.work_orders"),
         ("notifier", "intake.complaints"), ("handler", "router.work_orders"),
         ("intake", "notify.deliveries"), ("sla", "analytics.orders")]


@pytest.mark.parametrize("role,table", PAIRS)
def test_a_service_role_cannot_read_another_schema(system, role, table):
    c = system.pg.connect(user="kesu_" + role)
    try:
        with c.cursor() as cur:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT count(*) FROM " + table)
    finally:
        c.close()


def test_router_may_not_delete_its_orders(system):
    c = system.pg.connect(user="kesu_router")
    try:
        with c.cursor() as cur:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM router.work_orders WHERE false")
    finally:
        c.close()


def test_tokens_are_stored_hashed(system):
    tok = system.token("hash-check", "viewer")
    rows = system.pg.query("SELECT token_hash FROM auth.tokens WHERE name = 'hash-check'")
    assert rows and tok not in rows[0][0] and len(rows[0][0]) == 64


def test_scope_limits_what_a_token_sees(system):
    sh_agent = system.token("sh-agent", "agent", "310000")
    sh_handler = system.token("sh-handler", "handler", "310000")
    r = system.post("intake", "/v1/complaints", complaint(region="110105"), token=sh_agent)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    bj = system.post("intake", "/v1/complaints", complaint(region="110105")).json()["order_no"]
    sh = system.post("intake", "/v1/complaints", complaint(region="310115"),
                     token=sh_agent).json()["order_no"]
    assert system.get("intake", "/v1/complaints/" + bj, token=sh_agent).status_code == 404
    assert system.get("intake", "/v1/complaints/" + sh, token=sh_agent).status_code == 200
    wait_for(lambda: any(o["order_no"] == bj
                         for o in system.get("handler", "/v1/queue").json()["orders"]),
             what="Beijing order at handler")
    wait_for(lambda: any(o["order_no"] == sh
                         for o in system.get("handler", "/v1/queue", token=sh_handler)
                         .json()["orders"]), what="Shanghai order visible to Shanghai")
    seen = {o["order_no"] for o in system.get("handler", "/v1/queue", token=sh_handler)
            .json()["orders"]}
    assert bj not in seen
    r = system.post("handler", "/v1/orders/%s/actions" % bj,
                    {"action": "close", "answer": "越权"}, token=sh_handler)
    assert r.status_code in (403, 404)


def test_viewer_cannot_submit(system):
    viewer = system.token("viewer-1", "viewer")
    r = system.post("intake", "/v1/complaints", complaint(), token=viewer)
    assert r.status_code == 403


def test_every_service_has_health_ready_metrics(system):
    import requests
    for name in ("intake", "router", "handler", "sla", "notifier", "analytics"):
        s = system[name]
        assert requests.get(s.url("/healthz"), timeout=5).status_code == 200
        assert requests.get(s.url("/readyz"), timeout=5).status_code == 200
        m = requests.get(s.url("/metrics"), timeout=5)
        assert m.status_code == 200 and "# TYPE kesu_http_requests_total counter" in m.text


def test_roles_limit_what_a_token_reads(system):
    agent = system.token("agent-roles", "agent")
    viewer = system.token("viewer-roles", "viewer")
    no = system.post("intake", "/v1/complaints", complaint()).json()["order_no"]
    # a dashboard viewer sees KPIs but not the customer's name and phone
    assert system.get("intake", "/v1/complaints/" + no, token=viewer).status_code == 403
    assert system.get("intake", "/v1/complaints/" + no, token=agent).status_code == 200
    assert system.get("analytics", "/v1/kpi/summary", token=viewer).status_code == 200
    assert system.get("analytics", "/v1/kpi/summary", token=agent).status_code == 403


def test_sla_timers_need_a_staff_role_and_hide_other_regions(system):
    viewer = system.token("viewer-timers", "viewer")
    bj_handler = system.token("bj-handler-timers", "handler", "110000")
    no = system.post("intake", "/v1/complaints", complaint(region="310115")).json()["order_no"]
    wait_for(lambda: system.get("sla", "/v1/timers/" + no).status_code == 200, what="timer")
    assert system.get("sla", "/v1/timers/" + no, token=viewer).status_code == 403
    # Beijing staff get the same answer as for a number that does not exist
    r = system.get("sla", "/v1/timers/" + no, token=bj_handler)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert system.get("sla", "/v1/timers/KS000000000000000001", token=bj_handler).status_code == 404


def test_sla_changes_to_another_regions_timer_look_like_an_unknown_order(system):
    bj_handler = system.token("bj-handler-pause", "handler", "110000")
    no = system.post("intake", "/v1/complaints", complaint(region="310115")).json()["order_no"]
    wait_for(lambda: system.get("sla", "/v1/timers/" + no).status_code == 200, what="timer")
    body = {"step": "answer", "reason": "客户约定时间"}
    r = system.post("sla", "/v1/timers/%s/pause" % no, body, token=bj_handler)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert system.post("sla", "/v1/timers/%s/pause" % no, body).status_code == 200


def test_a_new_token_works_the_moment_it_is_printed(system):
    # The services learn about new tokens by NOTIFY; a request that beats the notification must
    # still be let in (the cache reloads once before answering 401), and a wrong token is still 401.
    for i in range(5):
        tok = system.token(f"fresh-{i}", "viewer")
        r = system.get("analytics", "/v1/kpi/summary", token=tok)
        assert r.status_code == 200, r.text
    assert system.get("analytics", "/v1/kpi/summary", token="kesu_" + "0" * 40).status_code == 401
