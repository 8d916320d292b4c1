"""Issue 3 (first slice): the SPEC §5 workflow wired into the router and the
handler — actions through wf_apply, history on both sides, refusals that change
nothing, re-dispatch when the holder unit changes, no DELETE for the router."""
import threading

import psycopg2
import pytest

from conftest import complaint, wait_for
from streams import Subscriber


def new_order(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    wait_for(lambda: any(o["order_no"] == no
                         for o in system.get("handler", "/v1/queue").json()["orders"]),
             what="order in the handler queue")
    wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state") == "dispatched",
             what="dispatched")
    return no


def centre_token(system, name, scope):
    """A centre (province customer-service centre) staff token."""
    return system.token(name, "centre", scope)


def hact(system, no, body, token=None):
    """A staff action at the handler; waits for the router's answer."""
    r = system.post("handler", "/v1/orders/%s/actions" % no, body, token=token)
    assert r.status_code != 202, "router did not answer in time: " + r.text
    return r


def ract(system, no, body, token=None):
    return system.post("router", "/v1/orders/%s/actions" % no, body, token=token)


def rorder(system, no):
    return system.get("router", "/v1/orders/" + no).json()


def rhistory(system, no):
    r = system.get("router", "/v1/orders/%s/history" % no)
    assert r.status_code == 200, r.text
    return r.json()


def handler_has(system, no, unit):
    def check():
        r = system.get("handler", "/v1/orders/" + no)
        return r.ok and r.json()["unit_id"] == unit and r.json()["state"] == "open"
    wait_for(check, what="order %s at the handler for unit %s" % (no, unit))


def test_full_path_with_history(system):
    centre = centre_token(system, "sh-centre", "310000")
    no = new_order(system)                       # routed to 浦东 sh-pd by the rules
    o = rorder(system, no)
    assert (o["wf_state"], o["holder_unit"], o["dispatcher_unit"]) == ("dispatched", "sh-pd", "sh")

    r = hact(system, no, {"action": "return", "reason": "不属于本单位业务"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["holder_unit"]) == ("review", "sh")
    handler_has(system, no, "sh")                # re-dispatched to a handler of the centre

    r = ract(system, no, {"action": "dispatch", "to_unit": "sh-xh"}, token=centre)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["holder_unit"]) == ("dispatched", "sh-xh")
    handler_has(system, no, "sh-xh")

    r = hact(system, no, {"action": "sign"})
    assert r.status_code == 200 and r.json()["state"] == "handling", r.text
    r = hact(system, no, {"action": "feedback", "answer": "已上门检修，线路恢复。"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["holder_unit"]) == ("feedback", "sh")
    handler_has(system, no, "sh")

    r = ract(system, no, {"action": "answer", "answer": "已电话告知客户处理结果。"}, token=centre)
    assert r.status_code == 200 and r.json()["state"] == "answered", r.text
    r = ract(system, no, {"action": "close"}, token=centre)
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text

    o = rorder(system, no)
    assert o["state"] == "closed" and o["wf_state"] == "closed" and o["closed_at"]
    h = rhistory(system, no)["history"]
    assert [s["action"] for s in h] == ["dispatch", "return", "dispatch", "sign", "feedback",
                                        "answer", "close"]
    assert [s["seq"] for s in h] == list(range(1, 8))
    assert h[0]["actor"] == "router" and h[0]["to_unit"] == "sh-pd"
    assert h[1]["actor"] == "e2e-admin" and h[1]["reason"] == "不属于本单位业务"
    assert (h[1]["from_unit"], h[1]["to_unit"]) == ("sh-pd", "sh")
    assert h[2]["actor"] == "sh-centre" and h[2]["actor_unit"] == "sh"
    assert (h[2]["from_unit"], h[2]["to_unit"]) == ("sh", "sh-xh")
    assert h[4]["answer"] == "已上门检修，线路恢复。"
    assert all(s["at"].endswith("+08:00") for s in h)
    assert [(s["from_state"], s["to_state"]) for s in h[1:]] == [
        ("dispatched", "review"), ("review", "dispatched"), ("dispatched", "handling"),
        ("handling", "feedback"), ("feedback", "answered"), ("answered", "closed")]

    # the handler keeps a copy: its own steps (ActionResult), the history that
    # came with each re-dispatch, and the centre's steps (OrderUpdate)
    def handler_copy():
        hh = system.get("handler", "/v1/orders/%s/history" % no)
        assert hh.status_code == 200, hh.text
        return hh.json() if len(hh.json()["history"]) == len(h) else None
    hh = wait_for(handler_copy, what="handler's copy of the history")
    assert [(s["seq"], s["action"], s["actor"], s["from_unit"], s["to_unit"], s["at"])
            for s in hh["history"]] == [(s["seq"], s["action"], s["actor"], s["from_unit"],
                                         s["to_unit"], s["at"]) for s in h]
    assert hh["wf_state"] == "closed" and hh["state"] == "closed"
    # the centre's scope: a Beijing centre token does not see it
    bj = centre_token(system, "bj-centre", "110000")
    assert system.get("router", "/v1/orders/%s/history" % no, token=bj).status_code == 404
    assert ract(system, no, {"action": "callback", "satisfaction": 5}, token=bj).status_code == 404
    # a handler role cannot act at the router
    sh_staff = system.token("sh-staff", "handler", "310000")
    assert ract(system, no, {"action": "callback", "satisfaction": 5},
                token=sh_staff).status_code == 403


def test_close_composite_and_refusal_changes_nothing(system):
    sub = Subscriber("tcp://127.0.0.1:%d" % (7110 + system.offset))
    try:
        no = new_order(system)
        r = hact(system, no, {"action": "close", "answer": "已为您退费。"})
        assert r.status_code == 200 and r.json()["state"] == "closed", r.text
        h = rhistory(system, no)["history"]
        assert [s["action"] for s in h] == ["dispatch", "sign", "feedback", "answer", "close"]
        assert {s["actor"] for s in h[1:]} == {"e2e-admin"}
        closed = wait_for(lambda: sub.of("WorkOrderClosed", no), what="WorkOrderClosed")
        assert len(closed) == 1 and closed[0].work_order_closed.answer == "已为您退费。"
        steps = wait_for(lambda: (lambda e: e if len(e) == 4 else None)(
            sub.of("WorkOrderStepChanged", no)), what="4 WorkOrderStepChanged")
        assert [(e.work_order_step_changed.action, e.work_order_step_changed.to_state)
                for e in steps] == [("sign", "handling"), ("feedback", "feedback"),
                                    ("answer", "answered"), ("close", "closed")]
    finally:
        sub.close()
    before = rorder(system, no)

    r = hact(system, no, {"action": "sign"})
    assert r.status_code == 409, r.text
    assert "已结办" in r.json()["error"]["message"]
    r = ract(system, no, {"action": "sign"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict"
    after = rorder(system, no)
    assert len(rhistory(system, no)["history"]) == len(h)
    for k in ("state", "wf_state", "holder_unit", "closed_at", "answer"):
        assert before[k] == after[k], k

    # validation at both doors
    assert ract(system, no, {"action": "teleport"}).status_code == 422
    assert ract(system, no, {"action": "callback", "mood": 1}).status_code == 422
    assert hact(system, no, {"action": "teleport"}).status_code == 422
    assert hact(system, no, {"action": "sign", "mood": 1}).status_code == 422
    # the callback after closing is allowed (at the router, by the centre)
    r = ract(system, no, {"action": "callback", "satisfaction": 4})
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text


def test_transfer_moves_the_order(system):
    no = new_order(system)
    r = hact(system, no, {"action": "transfer", "to_unit": "sh-xh"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason", r.text
    r = hact(system, no, {"action": "transfer", "to_unit": "nowhere", "reason": "x"})
    assert r.status_code == 422, r.text
    r = hact(system, no, {"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇辖区"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["holder_unit"]) == ("dispatched", "sh-xh")
    handler_has(system, no, "sh-xh")
    o = wait_for(lambda: (lambda j: j if j["state"] == "dispatched" else None)(rorder(system, no)),
                 what="re-dispatched")
    assert o["unit_id"] == "sh-xh" and o["holder_unit"] == "sh-xh"
    assert o["dispatcher_unit"] == "sh-pd"          # feedback returns to the transferrer
    assert len(o["dispatches"]) >= 2
    q = [x for x in system.get("handler", "/v1/queue").json()["orders"] if x["order_no"] == no]
    assert q and q[0]["unit_id"] == "sh-xh"
    h = rhistory(system, no)["history"]
    assert h[-1]["action"] == "transfer" and h[-1]["reason"] == "属徐汇辖区"
    assert (h[-1]["from_unit"], h[-1]["to_unit"]) == ("sh-pd", "sh-xh")


def test_escalate_one_level(system):
    no = new_order(system)
    r = hact(system, no, {"action": "escalate", "reason": "客户要求升级", "to_unit": "sh"})
    assert r.status_code == 422, r.text                # 市→省→总部, one level at a time
    r = hact(system, no, {"action": "escalate", "reason": "客户要求升级"})
    assert r.status_code == 200, r.text
    assert r.json()["holder_unit"] == "sh-city"
    handler_has(system, no, "sh-city")
    r = hact(system, no, {"action": "escalate", "reason": "仍未解决"})
    assert r.status_code == 200 and r.json()["holder_unit"] == "sh", r.text
    h = rhistory(system, no)["history"]
    assert [(s["action"], s["from_unit"], s["to_unit"]) for s in h[-2:]] == [
        ("escalate", "sh-pd", "sh-city"), ("escalate", "sh-city", "sh")]


def test_repair_needs_signed_receipt(system):
    no = new_order(system, kind="repair", title="宽带报修")
    r = hact(system, no, {"action": "close", "answer": "已修复。"})
    assert r.status_code == 409, r.text
    assert "回执" in r.json()["error"]["message"]
    o = rorder(system, no)
    assert o["wf_state"] == "dispatched" and o["state"] == "dispatched"
    assert len(rhistory(system, no)["history"]) == 1
    r = hact(system, no, {"action": "close", "answer": "已修复。", "receipt_signed": True})
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    assert rorder(system, no)["state"] == "closed"


def test_concurrent_actions_on_one_order_cannot_both_pass(system):
    no = new_order(system)
    results = []

    def sign():
        results.append(ract(system, no, {"action": "sign"}).status_code)
    threads = [threading.Thread(target=sign) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409], results
    h = rhistory(system, no)["history"]
    assert [s["action"] for s in h] == ["dispatch", "sign"]


def test_router_role_cannot_delete_history(system):
    c = system.pg.connect("kesu_router")
    try:
        for table in ("router.order_history", "router.work_orders", "router.actions"):
            with c.cursor() as cur:
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute("DELETE FROM %s" % table)
            with c.cursor() as cur:
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute("TRUNCATE %s" % table)
    finally:
        c.close()
