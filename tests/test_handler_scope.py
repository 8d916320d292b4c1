"""R-50 through every handler endpoint: a Shanghai staff token neither sees nor
acts on a Beijing order — the queue leaves it out, the order, its history and
its actions answer 404 as if it did not exist (nothing recorded, nothing sent
to the router), the action lists and the link counts leave it out. A Beijing
token sees it; roles other than handler/admin get 403."""
from conftest import complaint, wait_for


def test_shanghai_token_cannot_see_or_act_on_a_beijing_order(system):
    sh = system.token("scope-sh-staff", "handler", "310000")
    bj = system.token("scope-bj-staff", "handler", "110000")
    r = system.post("intake", "/v1/complaints", complaint(
        region="110108", title="范围测试：北京工单",
        customer={"name": "北京", "phone": "13811080001", "home_region": "110108"}))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state") == "dispatched",
             what="dispatched")
    wait_for(lambda: system.get("handler", "/v1/orders/" + no, token=bj).ok,
             what="at the handler for Beijing")
    # a Beijing colleague acts on it: that action is Beijing's too
    r = system.post("handler", "/v1/orders/%s/actions" % no, {"action": "sign"}, token=bj)
    assert r.status_code == 200, r.text
    pg = system.pg
    before = pg.scalar("SELECT count(*) FROM handler.pending_actions WHERE order_no = %s", (no,))

    def missing(r):
        return r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert no not in {o["order_no"] for o in
                      system.get("handler", "/v1/queue", token=sh).json()["orders"]}
    assert missing(system.get("handler", "/v1/orders/" + no, token=sh))
    assert missing(system.get("handler", "/v1/orders/%s/history" % no, token=sh))
    for body in ({"action": "close", "answer": "越权结办"}, {"action": "sign"},
                 {"action": "transfer", "to_unit": "sh-pd", "reason": "越权转派"},
                 {"action": "arrive"}, {"action": "reclassify", "tier": "national"}):
        r = system.post("handler", "/v1/orders/%s/actions" % no, body, token=sh)
        assert missing(r), (body, r.status_code, r.text)
    for status in ("all", "done", "pending", "refused"):
        acts = system.get("handler", "/v1/actions?status=" + status, token=sh).json()["actions"]
        assert no not in {a["order_no"] for a in acts}, status
    # nothing was recorded or sent for the refused requests
    assert pg.scalar("SELECT count(*) FROM handler.pending_actions WHERE order_no = %s",
                     (no,)) == before
    o = system.get("router", "/v1/orders/" + no).json()
    assert o["wf_state"] == "handling" and o["holder_unit"] == "bj-hd", o
    assert [s["action"] for s in system.get("router", "/v1/orders/%s/history" % no)
            .json()["history"]] == ["dispatch", "sign"]

    # Beijing's own staff see all of it
    assert no in {o["order_no"] for o in
                  system.get("handler", "/v1/queue", token=bj).json()["orders"]}
    assert system.get("handler", "/v1/orders/%s/history" % no, token=bj).status_code == 200
    acts = system.get("handler", "/v1/actions?status=done", token=bj).json()["actions"]
    assert [a["action"] for a in acts if a["order_no"] == no] == ["sign"]

    # other roles: 403 on every handler endpoint
    for role in ("viewer", "agent", "centre"):
        tok = system.token("scope-%s" % role, role, "110000")
        for path in ("/v1/queue", "/v1/orders/" + no, "/v1/orders/%s/history" % no,
                     "/v1/actions", "/v1/link"):
            r = system.get("handler", path, token=tok)
            assert r.status_code == 403, (role, path, r.status_code)
        r = system.post("handler", "/v1/orders/%s/actions" % no, {"action": "sign"}, token=tok)
        assert r.status_code == 403, (role, r.text)


def test_bad_query_parameters(system):
    r = system.get("handler", "/v1/actions?status=lost")
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    r = system.get("handler", "/v1/actions?limit=0")
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    r = system.get("handler", "/v1/link")
    assert r.status_code == 200 and r.json()["handler_id"] == "handler-1"
