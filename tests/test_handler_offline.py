"""Issue 3, regional handlers: while the handler's link to the router is down,
staff keep working (queue readable, actions recorded as pending); when the
link returns, every action reaches the router once, in the order staff took
them, and one that no longer fits is refused with the router's reason, shown
to staff through the handler's API. A handler SIGKILLed with unsent actions
sends them after its restart, once. An order moved away by the centre while
the handler was cut off: the handler's actions on it are refused with the
reason, and the order comes back under its new unit.

长宁 (310105 → unit sh-city by the rules) is this module's own district."""
import signal
import time

import requests

from conftest import complaint, wait_for

REGION = "310105"


def new_order(system, phone, title="离线测试"):
    r = system.post("intake", "/v1/complaints", complaint(
        region=REGION, title=title,
        customer={"name": "离线", "phone": phone, "home_region": REGION,
                  "address": "上海市长宁区延安西路1号"}))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state") == "dispatched",
             what="%s dispatched" % no)
    wait_for(lambda: system.get("handler", "/v1/orders/" + no).ok, what="%s at the handler" % no)
    return no


def link(system, token):
    r = system.get("handler", "/v1/link", token=token)
    assert r.status_code == 200, r.text
    return r.json()


def wait_link(system, token, up):
    wait_for(lambda: link(system, token)["router_reachable"] is up, timeout=20,
             what="router link %s" % ("up" if up else "down"))


def post(system, no, body, token):
    r = system.post("handler", "/v1/orders/%s/actions" % no, body, token=token)
    return r


def post_pending(system, no, body, token):
    """While the link is down the handler answers at once: recorded, pending."""
    t0 = time.time()
    r = post(system, no, body, token)
    assert r.status_code == 202, r.text
    j = r.json()
    assert j["status"] == "pending" and j["link"] == "down", j
    assert time.time() - t0 < 2.5, "staff waited for an unreachable centre"
    return j["action_id"]


def router_steps(system, no):
    """(seq, action, action_id) of the router's history."""
    return system.pg.query("SELECT seq, action, action_id FROM router.order_history "
                           "WHERE order_no = %s ORDER BY seq", (no,))


def router_results(system, ids):
    rows = system.pg.query("SELECT action_id, ok, code, message, count(*) OVER "
                           "(PARTITION BY action_id) FROM router.actions "
                           "WHERE action_id = ANY(%s)", (ids,))
    assert all(r[4] == 1 for r in rows), rows
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def applied_order(system, no):
    """The handler's action ids in the order the router applied them."""
    out = []
    for _, _, aid in router_steps(system, no):
        if aid and (not out or out[-1] != aid):
            out.append(aid)
    return out


def wait_answered(system, ids, timeout=40):
    def done():
        n = system.pg.scalar("SELECT count(*) FROM handler.pending_actions "
                             "WHERE action_id::text = ANY(%s) AND done_at IS NOT NULL", (ids,))
        return n == len(ids)
    wait_for(done, timeout=timeout, what="every action answered by the router")


def test_staff_work_through_a_frozen_router(system):
    staff = system.token("cn-staff", "handler", REGION)
    a = new_order(system, "13911050001", "离线：宽带断网")
    b = new_order(system, "13911050002", "离线：错派工单")
    c = new_order(system, "13911050003", "离线：资费疑问")
    router = system["router"]
    router.proc.send_signal(signal.SIGSTOP)
    try:
        wait_link(system, staff, False)
        # staff read their queue and open an order as usual
        q = system.get("handler", "/v1/queue", token=staff)
        assert q.status_code == 200
        assert {a, b, c} <= {o["order_no"] for o in q.json()["orders"]}
        assert system.get("handler", "/v1/orders/" + a, token=staff).status_code == 200
        ids = {}
        ids["a_sign"] = post_pending(system, a, {"action": "sign"}, staff)
        ids["b_transfer"] = post_pending(system, b, {"action": "transfer", "to_unit": "sh-xh",
                                                     "reason": "地址属徐汇辖区"}, staff)
        ids["a_interim"] = post_pending(system, a, {"action": "interim_reply",
                                                    "answer": "已安排工程师上门。"}, staff)
        ids["c_sign"] = post_pending(system, c, {"action": "sign"}, staff)
        # a colleague, not knowing b was just transferred, answers and closes it
        ids["b_close"] = post_pending(system, b, {"action": "close",
                                                  "answer": "已答复客户。"}, staff)
        ids["a_close"] = post_pending(system, a, {"action": "close",
                                                  "answer": "线路已修复，客户确认可以上网。"}, staff)
        ids["c_feedback"] = post_pending(system, c, {"action": "feedback",
                                                     "answer": "已向客户解释资费。"}, staff)
        # while the router is away: all of it waits at the handler, nothing applied
        st = link(system, staff)
        assert st["router_reachable"] is False and st["pending"] == 7, st
        pend = system.get("handler", "/v1/actions?status=pending", token=staff).json()["actions"]
        assert [x["action_id"] for x in pend] == [ids[k] for k in (
            "a_sign", "b_transfer", "a_interim", "c_sign", "b_close", "a_close", "c_feedback")]
        o = system.get("handler", "/v1/orders/" + a, token=staff).json()
        assert [(x["action"], x["status"]) for x in o["actions"]] == [
            ("sign", "pending"), ("interim_reply", "pending"), ("close", "pending")]
        for no in (a, b, c):
            assert [s[1] for s in router_steps(system, no)] == ["dispatch"]
    finally:
        router.proc.send_signal(signal.SIGCONT)

    wait_answered(system, list(ids.values()))
    wait_link(system, staff, True)
    assert link(system, staff)["pending"] == 0
    res = router_results(system, list(ids.values()))
    assert set(res) == set(ids.values())  # each reached the router, once
    # a: in the order staff acted; the close is sign → feedback → answer → close
    assert applied_order(system, a) == [ids["a_sign"], ids["a_interim"], ids["a_close"]]
    assert [s[1] for s in router_steps(system, a)] == [
        "dispatch", "sign", "interim_reply", "feedback", "answer", "close"]
    assert system.get("router", "/v1/orders/" + a).json()["wf_state"] == "closed"
    assert applied_order(system, c) == [ids["c_sign"], ids["c_feedback"]]
    # b: transferred; the close that came after it no longer fits
    assert applied_order(system, b) == [ids["b_transfer"]]
    rb = system.get("router", "/v1/orders/" + b).json()
    assert rb["holder_unit"] == "sh-xh" and rb["wf_state"] != "closed", rb
    ok, code, message = res[ids["b_close"]]
    assert ok is False and code == "forbidden" and "sh-xh" in message, res[ids["b_close"]]
    # the refusal, with the router's reason, reaches the staff member
    ob = system.get("handler", "/v1/orders/" + b, token=staff).json()
    acts = {x["action_id"]: x for x in ob["actions"]}
    assert acts[ids["b_transfer"]]["ok"] is True
    refused = acts[ids["b_close"]]
    assert refused["status"] == "done" and refused["ok"] is False, refused
    assert refused["code"] == "forbidden" and refused["message"] == message
    lst = system.get("handler", "/v1/actions?status=refused", token=staff).json()["actions"]
    mine = [x for x in lst if x["order_no"] in (a, b, c)]
    assert [(x["action_id"], x["status"], x["message"]) for x in mine] == [
        (ids["b_close"], "refused", message)]
    assert link(system, staff)["refused"] >= 1


def test_handler_killed_with_unsent_actions_sends_them_after_restart(system):
    staff = system.token("cn-staff-2", "handler", REGION)
    p = new_order(system, "13911050011", "离线：重启前的操作")
    q = new_order(system, "13911050012", "离线：重启前的操作二")
    router, handler = system["router"], system["handler"]
    router.kill()
    try:
        wait_link(system, staff, False)
        ids = [post_pending(system, p, {"action": "sign"}, staff),
               post_pending(system, q, {"action": "sign"}, staff),
               post_pending(system, p, {"action": "close", "answer": "已处理并回复客户。"}, staff)]
        handler.kill()  # with its actions recorded but never delivered
        rows = system.pg.query("SELECT action_id::text, done_at FROM handler.pending_actions "
                               "WHERE action_id::text = ANY(%s) ORDER BY seq", (ids,))
        assert rows == [(i, None) for i in ids]
    finally:
        router.start()
    handler.start()
    wait_answered(system, ids)
    res = router_results(system, ids)
    assert set(res) == set(ids) and all(v[0] for v in res.values()), res
    assert applied_order(system, p) == [ids[0], ids[2]]
    assert applied_order(system, q) == [ids[1]]
    assert system.get("router", "/v1/orders/" + p).json()["wf_state"] == "closed"
    hp = system.get("handler", "/v1/orders/" + p, token=staff).json()
    assert hp["state"] == "closed" and [x["ok"] for x in hp["actions"]] == [True, True]
    # the resends after the restart changed nothing more: one step each
    assert [s[1] for s in router_steps(system, q)] == ["dispatch", "sign"]


def test_order_moved_by_the_centre_while_cut_off(system):
    """The centre transfers an order while the handler cannot reach the
    router; the handler's actions on it, recorded meanwhile, are refused with
    the reason, and the order reappears under its new unit."""
    staff = system.token("cn-staff-3", "handler", REGION)
    centre = system.token("sh-centre-offline", "centre", "310000")
    x = new_order(system, "13911050021", "离线：中心改派")
    y = new_order(system, "13911050022", "离线：同时处理的另一单")
    router, handler = system["router"], system["handler"]
    router.kill()
    try:
        wait_link(system, staff, False)
        sign = post_pending(system, x, {"action": "sign"}, staff)
        reply = post_pending(system, x, {"action": "interim_reply", "answer": "处理中。"}, staff)
        other = post_pending(system, y, {"action": "sign"}, staff)
        handler.proc.send_signal(signal.SIGSTOP)  # still cut off while the router is back
        try:
            router.start()
            r = system.post("router", "/v1/orders/%s/actions" % x,
                            {"action": "transfer", "to_unit": "sh-xh", "reason": "中心改派徐汇"},
                            token=centre)
            assert r.status_code == 200 and r.json()["holder_unit"] == "sh-xh", r.text
        finally:
            handler.proc.send_signal(signal.SIGCONT)
    finally:
        if router.proc.poll() is not None:
            router.start()
    ids = [sign, reply, other]
    wait_answered(system, ids)
    res = router_results(system, ids)
    assert res[other][0] is True
    for aid in (sign, reply):
        ok, code, message = res[aid]
        assert ok is False and code == "forbidden" and "sh-xh" in message, res[aid]
    assert [s[1] for s in router_steps(system, x)] == ["dispatch", "transfer"]
    ox = system.get("handler", "/v1/orders/" + x, token=staff).json()
    assert [(a["action"], a["ok"]) for a in ox["actions"]] == [("sign", False),
                                                               ("interim_reply", False)]
    assert all("sh-xh" in a["message"] for a in ox["actions"])
    # the order left sh-city's hands: it is back under sh-xh, with the centre's step
    def moved():
        o = system.get("handler", "/v1/orders/" + x, token=staff).json()
        return o["unit_id"] == "sh-xh" and o["state"] == "open" and o
    wait_for(moved, what="order re-dispatched for sh-xh")
    row = [o for o in system.get("handler", "/v1/queue", token=staff).json()["orders"]
           if o["order_no"] == x]
    assert row and row[0]["unit_id"] == "sh-xh"
    h = system.get("handler", "/v1/orders/%s/history" % x, token=staff).json()
    assert [s["action"] for s in h["history"]][-1] == "transfer" and h["pending"] == []
    # a new action on the moved order from the old unit's point of view is
    # the new holder's now: accepted for sh-xh
    r = post(system, x, {"action": "sign"}, staff)
    assert r.status_code == 200 and r.json()["holder_unit"] == "sh-xh", r.text


def test_recalled_order_leaves_the_queue_and_actions_behind_the_move_are_refused(system):
    """A handler serving only sh-city: its staff transfer an order to sh-xh and,
    right behind it, post another action on it. The router applies the
    transfer and recalls the order: it leaves this handler's queue; the action
    behind the transfer is refused with the router's reason; a new one is
    refused at once (409)."""
    import socket
    from conftest import Service
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    staff = system.token("cn-staff-4", "handler", REGION)
    h1 = system["handler"]
    h2 = Service(system, "handler-cn", {"KESU_HANDLER_ID": "handler-cn",
                                        "KESU_HANDLER_UNITS": "sh-city",
                                        "KESU_HANDLER_HTTP": "127.0.0.1:%d" % port})
    h2.port = port
    h1.proc.send_signal(signal.SIGSTOP)  # handler-cn is the only one left for sh-city
    try:
        h2.start()

        def only_cn():
            hs = system.get("router", "/v1/handlers").json()
            live = [h for h in hs["handlers"] if h["last_seen_ms_ago"] < 2000]
            gone = all(h["last_seen_ms_ago"] > 4000 for h in hs["handlers"]
                       if h["handler_id"] != "handler-cn")
            return {h["handler_id"] for h in live} == {"handler-cn"} and gone
        wait_for(only_cn, timeout=20, what="handler-cn the only live handler")
        r = system.post("intake", "/v1/complaints", complaint(
            region=REGION, title="离线：改派后离开队列",
            customer={"name": "改派", "phone": "13911050031", "home_region": REGION}))
        assert r.status_code == 201, r.text
        no = r.json()["order_no"]
        wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state")
                 == "dispatched", what="dispatched to handler-cn")
        assert system.pg.scalar("SELECT handler_id FROM router.work_orders WHERE order_no = %s",
                                (no,)) == "handler-cn"

        def hget(path):
            return requests.get(h2.url(path), headers=system.headers(staff), timeout=10)

        def hpost(body):
            return requests.post(h2.url("/v1/orders/%s/actions" % no), json=body,
                                 headers=dict(system.headers(staff), Prefer="respond-async"),
                                 timeout=10)
        wait_for(lambda: any(o["order_no"] == no for o in hget("/v1/queue").json()["orders"]),
                 what="in handler-cn's queue")
        # both recorded before the router can answer the first
        system["router"].proc.send_signal(signal.SIGSTOP)
        try:
            t = hpost({"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇辖区"})
            behind = hpost({"action": "interim_reply", "answer": "正在处理。"})
        finally:
            system["router"].proc.send_signal(signal.SIGCONT)
        assert t.status_code == 202 and behind.status_code == 202, (t.text, behind.text)
        assert t.json()["queued"] is False and behind.json()["queued"] is True
        ids = [t.json()["action_id"], behind.json()["action_id"]]
        wait_answered(system, ids)
        res = router_results(system, ids)
        assert res[ids[0]][0] is True
        ok, code, message = res[ids[1]]
        assert ok is False and code == "forbidden" and "sh-xh" in message, res
        # recalled: out of the queue, marked moved, the refusal shown with its reason
        wait_for(lambda: hget("/v1/orders/" + no).json()["state"] == "moved", what="moved")
        assert no not in {o["order_no"] for o in hget("/v1/queue").json()["orders"]}
        acts = hget("/v1/orders/" + no).json()["actions"]
        assert [(a["action"], a["ok"]) for a in acts] == [("transfer", True),
                                                          ("interim_reply", False)]
        assert acts[1]["message"] == message and acts[1]["code"] == "forbidden"
        r = requests.post(h2.url("/v1/orders/%s/actions" % no), json={"action": "sign"},
                          headers=system.headers(staff), timeout=10)
        assert r.status_code == 409 and "其他单位" in r.json()["error"]["message"], r.text
        assert [s[1] for s in router_steps(system, no)] == ["dispatch", "transfer"]
    finally:
        h1.proc.send_signal(signal.SIGCONT)
        h2.stop()
    log = h2.tail(1 << 20)
    assert "AddressSanitizer" not in log and "runtime error:" not in log, h2.log_path
    # handler-1 (serving sh-xh) gets it once it is back
    wait_for(lambda: system.get("handler", "/v1/orders/" + no).json().get("state") == "open"
             and system.get("handler", "/v1/orders/" + no).json()["unit_id"] == "sh-xh",
             what="order back at handler-1 for sh-xh")
