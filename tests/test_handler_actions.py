"""Issue 3, the handler's side of the new router actions: staff record a
repair team's arrival (arrive) through the handler; reclassify is the
complaint centre's (R-13) — the handler forwards it and shows the router's
refusal with its reason; malformed reclassify bodies are refused at the
handler (422) before anything is recorded."""
from conftest import complaint, wait_for

REGION = "310105"


def new_order(system, phone, **over):
    body = complaint(region=REGION, customer={"name": "报修", "phone": phone,
                                              "home_region": REGION}, **over)
    r = system.post("intake", "/v1/complaints", body)
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state") == "dispatched",
             what="dispatched")
    wait_for(lambda: system.get("handler", "/v1/orders/" + no).ok, what="at the handler")
    return no


def act(system, no, body, token):
    r = system.post("handler", "/v1/orders/%s/actions" % no, body, token=token)
    assert r.status_code != 202, "router did not answer in time: " + r.text
    return r


def test_arrive_on_a_repair_and_reclassify_is_the_centres(system):
    staff = system.token("cn-repair-staff", "handler", REGION)
    no = new_order(system, "13911050041", kind="repair", title="报修：光猫故障")
    assert act(system, no, {"action": "sign"}, staff).status_code == 200
    r = act(system, no, {"action": "arrive", "reason": "维修人员 10:20 到达现场"}, staff)
    assert r.status_code == 200 and r.json()["wf_state"] == "handling", r.text
    h = system.get("router", "/v1/orders/%s/history" % no).json()["history"]
    assert [(s["action"], s["reason"], s["actor"]) for s in h[-1:]] == [
        ("arrive", "维修人员 10:20 到达现场", "cn-repair-staff")]
    hh = system.get("handler", "/v1/orders/%s/history" % no, token=staff).json()["history"]
    assert [s["action"] for s in hh][-2:] == ["sign", "arrive"]

    before = system.pg.scalar("SELECT count(*) FROM handler.pending_actions WHERE order_no = %s",
                              (no,))
    for body, field in (({"action": "reclassify"}, "tier"),
                        ({"action": "reclassify", "tier": "county"}, "tier"),
                        ({"action": "reclassify", "vip": "yes"}, "vip")):
        r = system.post("handler", "/v1/orders/%s/actions" % no, body, token=staff)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
    assert system.pg.scalar("SELECT count(*) FROM handler.pending_actions WHERE order_no = %s",
                            (no,)) == before
    r = act(system, no, {"action": "reclassify", "tier": "national", "reason": "集团客户"}, staff)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    reason = r.json()["error"]["message"]
    assert reason
    acts = system.get("handler", "/v1/orders/" + no, token=staff).json()["actions"]
    assert (acts[-1]["action"], acts[-1]["ok"], acts[-1]["message"]) == ("reclassify", False,
                                                                          reason)
    assert system.get("router", "/v1/orders/" + no).json()["tier"] == "general"
