"""Issue 3: one end-to-end scenario per SPEC §5 flow, through the public
interfaces (intake, handler and router HTTP), asserting the states and the
history a user sees — plus what the creation path decides (R-05, R-08, R-13,
R-15, R-20, R-21, unknown problem type) and the events it emits."""
import pytest

from conftest import complaint, wait_for
from streams import envelope_pb2

ADDR = "上海市浦东新区张杨路100号"


def submit(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code == 201, r.text
    return r.json()["order_no"]


def rorder(system, no, token=None):
    """The router's view of the order (waits for the router to have created it)."""
    r = wait_for(lambda: (lambda x: x if x.status_code != 404 else None)(
        system.get("router", "/v1/orders/" + no, token=token)), what="order %s created" % no)
    assert r.status_code == 200, r.text
    return r.json()


def history(system, no, token=None):
    r = system.get("router", "/v1/orders/%s/history" % no, token=token)
    assert r.status_code == 200, r.text
    return r.json()["history"]


def held_by(system, no, unit):
    """The order is at the handler for unit, open (dispatched and acknowledged)."""
    def check():
        r = system.get("handler", "/v1/orders/" + no)
        return r.ok and r.json()["unit_id"] == unit and r.json()["state"] == "open"
    wait_for(check, what="order %s at the handler for unit %s" % (no, unit))
    wait_for(lambda: rorder(system, no)["state"] == "dispatched", what="acknowledged")


def hact(system, no, body):
    r = system.post("handler", "/v1/orders/%s/actions" % no, body)
    assert r.status_code != 202, "router did not answer in time: " + r.text
    return r


def ract(system, no, body, token):
    return system.post("router", "/v1/orders/%s/actions" % no, body, token=token)


def ok(r, state=None, holder=None):
    assert r.status_code == 200, r.text
    if state:
        assert r.json()["state"] == state, r.text
    if holder:
        assert r.json()["holder_unit"] == holder, r.text
    return r.json()


def events(system, no, type_):
    rows = system.pg.query("SELECT envelope FROM router.outbox WHERE order_no = %s AND type = %s "
                           "ORDER BY seq", (no, type_))
    out = []
    for (buf,) in rows:
        env = envelope_pb2.Envelope()
        env.ParseFromString(bytes(buf))
        out.append(env)
    return out


@pytest.fixture(scope="module")
def tokens(system):
    return {"sh": system.token("flows-sh-centre", "centre", "310000"),
            "bj": system.token("flows-bj-centre", "centre", "110000"),
            "hq": system.token("flows-hq", "centre", "000000")}


def test_ordinary_complaint_full_cycle_with_rehandling(system, tokens):
    no = submit(system, customer={"name": "周杰", "phone": "13811110001", "home_region": "310115",
                                  "address": ADDR})
    held_by(system, no, "sh-pd")
    # the first dispatch carries the first history step to the handler
    hh = system.get("handler", "/v1/orders/%s/history" % no).json()["history"]
    assert [(s["seq"], s["action"], s["actor"], s["to_unit"]) for s in hh] == \
        [(1, "dispatch", "router", "sh-pd")]

    ok(hact(system, no, {"action": "sign"}), "handling", "sh-pd")
    ok(hact(system, no, {"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇区线路"}),
       "dispatched", "sh-xh")
    held_by(system, no, "sh-xh")
    ok(hact(system, no, {"action": "sign"}), "handling", "sh-xh")
    ok(hact(system, no, {"action": "assist", "to_unit": "sh-hp", "reason": "需黄浦机房配合"}),
       "handling", "sh-xh")
    r = hact(system, no, {"action": "feedback", "answer": "已修复"})
    assert r.status_code == 409, r.text           # the assist is still open
    ok(hact(system, no, {"action": "assist_feedback", "answer": "机房端口已更换"}), "handling")
    # feedback goes back to whoever dispatched it here — 浦东, which transferred it
    ok(hact(system, no, {"action": "feedback", "answer": "线路已修复，网速恢复正常。"}),
       "feedback", "sh-pd")
    held_by(system, no, "sh-pd")
    ok(hact(system, no, {"action": "answer", "answer": "已电话告知客户：线路已修复。"}), "answered")
    ok(hact(system, no, {"action": "close", "answer": "已电话告知客户：线路已修复。"}), "closed")
    # the callback finds the customer dissatisfied, the handling at fault: re-handling
    ok(ract(system, no, {"action": "callback", "satisfaction": 1, "at_fault": True}, tokens["sh"]),
       "closed")
    ok(ract(system, no, {"action": "reopen", "reason": "回访不满意：仍然掉线"}, tokens["sh"]),
       "handling", "sh-pd")
    held_by(system, no, "sh-pd")
    ok(hact(system, no, {"action": "close", "answer": "更换光猫后测试一周无掉线。"}), "closed")

    o = rorder(system, no)
    assert (o["state"], o["wf_state"], o["holder_unit"]) == ("closed", "closed", "sh-pd")
    assert o["answer"] == "更换光猫后测试一周无掉线。"
    h = history(system, no)
    assert [s["action"] for s in h] == [
        "dispatch", "sign", "transfer", "sign", "assist", "assist_feedback", "feedback", "answer",
        "close", "callback", "reopen", "feedback", "answer", "close"]
    assert [s["seq"] for s in h] == list(range(1, 15))
    assert [(s["from_state"], s["to_state"]) for s in h] == [
        ("accepted", "dispatched"), ("dispatched", "handling"), ("handling", "dispatched"),
        ("dispatched", "handling"), ("handling", "handling"), ("handling", "handling"),
        ("handling", "feedback"), ("feedback", "answered"), ("answered", "closed"),
        ("closed", "closed"), ("closed", "handling"), ("handling", "feedback"),
        ("feedback", "answered"), ("answered", "closed")]
    assert (h[2]["from_unit"], h[2]["to_unit"], h[2]["reason"]) == ("sh-pd", "sh-xh", "属徐汇区线路")
    assert h[4]["to_unit"] == "sh-hp"
    assert (h[6]["from_unit"], h[6]["to_unit"]) == ("sh-xh", "sh-pd")
    assert h[9]["actor"] == "flows-sh-centre" and h[9]["details"] == {"satisfaction": 1,
                                                                     "at_fault": True}
    assert h[10]["reason"] == "回访不满意：仍然掉线"
    # two closures, two WorkOrderClosed events
    assert len(events(system, no, "WorkOrderClosed")) == 2


def test_escalated_complaint_needs_hq_review_and_phone_callback(system, tokens):
    no = submit(system, stream="escalated", channel="upper_referral",
                customer={"name": "吴敏", "phone": "13811110002", "home_region": "310115",
                          "address": ADDR})
    o = rorder(system, no)
    # HQ dispatches to the province centre of the home region
    assert (o["holder_unit"], o["dispatcher_unit"]) == ("sh", "hq")
    held_by(system, no, "sh")
    ok(hact(system, no, {"action": "sign"}), "handling", "sh")
    ok(hact(system, no, {"action": "feedback", "answer": "处理结果、客户答复和整改措施见附件。"}),
       "feedback", "hq")
    ok(ract(system, no, {"action": "answer", "answer": "已答复客户。"}, tokens["hq"]), "answered")
    r = ract(system, no, {"action": "close"}, tokens["hq"])
    assert r.status_code == 409 and "R-20" in r.json()["error"]["message"], r.text
    ok(ract(system, no, {"action": "hq_review"}, tokens["hq"]), "answered")
    r = ract(system, no, {"action": "close"}, tokens["hq"])
    assert r.status_code == 409, r.text           # reviewed, but no phone callback yet
    ok(ract(system, no, {"action": "callback", "satisfaction": 5}, tokens["hq"]), "answered")
    ok(ract(system, no, {"action": "close"}, tokens["hq"]), "closed")
    h = history(system, no)
    assert [s["action"] for s in h] == ["dispatch", "sign", "feedback", "answer", "hq_review",
                                        "callback", "close"]
    assert (h[0]["actor_unit"], h[0]["from_unit"], h[0]["to_unit"]) == ("hq", "hq", "sh")
    assert all(s["actor_unit"] == "hq" for s in h[3:])
    assert rorder(system, no)["wf_state"] == "closed"


APPEAL = {"source_body": "工业和信息化部", "filed": True, "contact_person": "李科长",
          "business": "internet", "nature": "quality"}


@pytest.mark.parametrize("conclusion", ["company_liable", "handled_properly", "withdrawn",
                                        "user_fault"])
def test_appeal_with_each_conclusion_is_archived(system, tokens, conclusion):
    no = submit(system, stream="appeal", channel="regulator", appeal=APPEAL,
                customer={"name": "郑华", "phone": "1381111%04d" % len(conclusion),
                          "home_region": "310115", "address": ADDR})
    got = system.get("intake", "/v1/complaints/" + no).json()
    assert got["appeal"] == APPEAL and got["stream"] == "appeal"
    o = rorder(system, no)
    assert (o["holder_unit"], o["dispatcher_unit"], o["stream"]) == ("sh", "hq", "appeal")
    held_by(system, no, "sh")
    ok(hact(system, no, {"action": "sign"}))
    ok(hact(system, no, {"action": "feedback", "answer": "分公司处理报告"}), "feedback", "hq")
    ok(ract(system, no, {"action": "answer", "answer": "已向管局报告"}, tokens["hq"]), "answered")
    r = ract(system, no, {"action": "close"}, tokens["hq"])
    assert r.status_code == 409 and "R-21" in r.json()["error"]["message"], r.text
    r = ract(system, no, {"action": "conclude", "conclusion": conclusion,
                          "responsibility": "上海分公司"}, tokens["hq"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "regulator_opinion", r.text
    ok(ract(system, no, {"action": "conclude", "conclusion": conclusion,
                         "responsibility": "上海分公司", "regulator_opinion": "同意调解"},
            tokens["hq"]), "answered")
    ok(ract(system, no, {"action": "close"}, tokens["hq"]), "closed")
    ok(ract(system, no, {"action": "archive"}, tokens["hq"]), "archived")
    r = ract(system, no, {"action": "callback", "satisfaction": 5}, tokens["hq"])
    assert r.status_code == 409, r.text           # archived: nothing more
    h = history(system, no)
    assert [s["action"] for s in h] == ["dispatch", "sign", "feedback", "answer", "conclude",
                                        "close", "archive"]
    assert h[4]["details"] == {"conclusion": conclusion, "responsibility": "上海分公司",
                               "regulator_opinion": "同意调解"}
    assert h[-1]["to_state"] == "archived"


def test_repair_arrive_then_refused_without_receipt_then_closed(system, tokens):
    no = submit(system, kind="repair", area="rural", title="宽带报修",
                customer={"name": "钱多", "phone": "13811110003", "home_region": "310115",
                          "address": ADDR})
    held_by(system, no, "sh-pd")
    r = hact(system, no, {"action": "arrive"})
    assert r.status_code == 409, r.text           # not signed for yet
    ok(hact(system, no, {"action": "sign"}), "handling")
    system.advance(1800)
    ok(hact(system, no, {"action": "arrive"}), "handling", "sh-pd")
    o = rorder(system, no)
    assert o["arrived_at"] and o["area"] == "rural"
    r = hact(system, no, {"action": "close", "answer": "已更换故障设备。"})
    assert r.status_code == 409 and "R-22" in r.json()["error"]["message"], r.text
    assert rorder(system, no)["wf_state"] == "handling"   # refused: nothing changed
    ok(hact(system, no, {"action": "close", "answer": "已更换故障设备。", "receipt_signed": True}),
       "closed")
    h = history(system, no)
    assert [s["action"] for s in h] == ["dispatch", "sign", "arrive", "feedback", "answer",
                                        "close"]
    assert h[2]["details"]["arrived_at"] == h[2]["at"]
    assert h[-1]["details"]["receipt_signed"] is True
    # the SLA-watcher's arrival timer stops on this event
    arrive = [e.work_order_step_changed for e in events(system, no, "WorkOrderStepChanged")
              if e.work_order_step_changed.action == "arrive"]
    assert len(arrive) == 1
    assert (arrive[0].kind, arrive[0].area, arrive[0].stream, arrive[0].tier) == \
        ("repair", "rural", "ordinary", "general")
    # a complaint has no arrival
    other = submit(system, customer={"name": "孙丽", "phone": "13811110004",
                                     "home_region": "310115", "address": ADDR})
    held_by(system, other, "sh-pd")
    ok(hact(system, other, {"action": "sign"}))
    assert hact(system, other, {"action": "arrive"}).status_code == 409


def test_on_the_spot_answer_is_a_closed_order(system):
    answer = "已告知客户套餐资费标准，客户表示理解。"
    no = submit(system, kind="enquiry", answer_on_spot=answer,
                customer={"name": "冯晓", "phone": "13811110005", "home_region": "310115"})
    o = rorder(system, no)
    assert (o["state"], o["wf_state"], o["answer"]) == ("closed", "closed", answer)
    assert o["closed_at"] == o["accepted_at"]
    assert o["dispatches"] == []
    h = history(system, no)
    assert [(s["action"], s["from_state"], s["to_state"], s["answer"], s["actor"]) for s in h] == \
        [("answer_on_spot", "accepted", "closed", answer, "e2e-admin")]
    closed = events(system, no, "WorkOrderClosed")
    assert len(closed) == 1 and closed[0].work_order_closed.answer == answer
    assert system.get("handler", "/v1/orders/" + no).status_code == 404   # never dispatched
    got = system.get("intake", "/v1/complaints/" + no).json()
    assert got["answer_on_spot"] == answer and got["customer"]["address"] == ""


def test_unknown_problem_type_goes_to_the_business_owner_department(system):
    body = complaint(customer={"name": "陈东", "phone": "13811110006", "home_region": "310115",
                               "address": ADDR})
    del body["problem_type"]
    r = system.post("intake", "/v1/complaints", body)
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    o = rorder(system, no)
    assert (o["holder_unit"], o["dispatcher_unit"], o["problem_type"]) == \
        ("sh-biz-telecom", "sh", "")
    held_by(system, no, "sh-biz-telecom")
    h = history(system, no)
    assert (h[0]["to_unit"], h[0]["details"]) == ("sh-biz-telecom", {"by": "business_owner"})
    assert system.get("intake", "/v1/complaints/" + no).json()["business_line"] == "telecom"


def test_cross_province_is_national_and_answered_by_the_home_centre(system, tokens):
    # a Shanghai gold customer roaming in Beijing
    no = submit(system, region="110105", tier="general", gravity=True,
                customer={"name": "褚明", "phone": "13811110007", "home_region": "310115",
                          "address": ADDR, "level": "gold"})
    o = rorder(system, no)
    assert (o["tier"], o["vip"], o["holder_unit"], o["dispatcher_unit"]) == \
        ("national", True, "sh", "sh")
    assert o["priority"] == 3 + 10 + 5            # national + VIP + gravity
    created = events(system, no, "WorkOrderCreated")[0].work_order_created
    assert (created.unit_id, created.vip, created.priority, created.dispatcher_unit,
            created.home_region, created.problem_type) == ("sh", True, 18, "sh", "310115",
                                                          "network")
    held_by(system, no, "sh")
    # the home centre answers; its staff see it although it was raised in Beijing
    assert history(system, no, token=tokens["sh"])[0]["to_unit"] == "sh"
    ok(hact(system, no, {"action": "close", "answer": "上海中心已致电客户说明漫游资费。"}), "closed")
    h = history(system, no)
    assert [s["action"] for s in h] == ["dispatch", "sign", "feedback", "answer", "close"]
    assert all(s["actor_unit"] == "sh" for s in h[1:])


def test_reclassify_by_the_centre_changes_tier_and_priority(system, tokens):
    no = submit(system, customer={"name": "卫兰", "phone": "13811110008", "home_region": "310115",
                                  "address": ADDR})
    held_by(system, no, "sh-pd")
    assert rorder(system, no)["priority"] == 1
    r = hact(system, no, {"action": "reclassify", "tier": "provincial"})
    assert r.status_code in (403, 422), r.text    # handlers cannot re-tier
    r = ract(system, no, {"action": "reclassify", "tier": "cosmic"}, tokens["sh"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "tier", r.text
    ok(ract(system, no, {"action": "reclassify", "tier": "provincial", "customer_level": "diamond",
                         "vip": True}, tokens["sh"]), "dispatched", "sh-pd")
    o = rorder(system, no)
    assert (o["tier"], o["customer_level"], o["vip"], o["priority"]) == \
        ("provincial", "diamond", True, 12)
    sc = [e.work_order_step_changed for e in events(system, no, "WorkOrderStepChanged")]
    assert [(e.action, e.tier, e.customer_level, e.vip) for e in sc] == \
        [("reclassify", "provincial", "diamond", True)]
    assert history(system, no)[-1]["details"]["reclassified"]["tier_from"] == "general"
    # the handler holding it re-sorts its queue: 12 now, ahead of the ordinary orders
    def handler_copy():
        q = system.get("handler", "/v1/queue?limit=1000").json()
        mine = [e for e in q["orders"] if e["order_no"] == no]
        return mine and mine[0]["priority"] == 12 and q
    q = wait_for(handler_copy, what="the handler's queue shows the new priority")
    assert q["orders"][0]["order_no"] == no, q["orders"][:3]
    h = system.get("handler", "/v1/orders/" + no).json()
    assert (h["complaint"]["tier"], h["complaint"]["customer"]["level"], h["complaint"]["vip"]) \
        == ("provincial", "diamond", True), h["complaint"]
    # dispatched again (a transfer): the new holder's copy has the new class too
    ok(hact(system, no, {"action": "sign"}))
    ok(hact(system, no, {"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇辖区"}))
    held_by(system, no, "sh-xh")
    h = system.get("handler", "/v1/orders/" + no).json()
    assert (h["complaint"]["tier"], h["complaint"]["customer"]["level"], h["complaint"]["vip"],
            h["complaint"]["priority"]) == ("provincial", "diamond", True, 12), h["complaint"]


def test_order_reloaded_at_router_restart_reaches_the_handler_with_its_history(system):
    """An order not yet with a handler when the router restarts is reloaded from the
    database; its dispatch still carries the first history step."""
    system["handler"].stop()
    try:
        no = submit(system, customer={"name": "蒋涛", "phone": "13811110009",
                                      "home_region": "310115", "address": ADDR})
        assert rorder(system, no)["state"] == "created"      # no handler to take it
        system["router"].restart()
    finally:
        system["handler"].start()
    held_by(system, no, "sh-pd")
    hh = system.get("handler", "/v1/orders/%s/history" % no).json()["history"]
    assert [(s["seq"], s["action"], s["actor"], s["from_unit"], s["to_unit"]) for s in hh] == \
        [(1, "dispatch", "router", "sh", "sh-pd")]


def test_r07_fields_are_stored_and_read_back(system):
    no = submit(system, cause="staff_behaviour", brand="全球通", area="rural", gravity=True,
                urgency=True, recording_ref="REC-2026-0001", customer_signed=True,
                customer={"name": "韩梅", "phone": "13811110099", "home_region": "310115",
                          "address": ADDR, "email": "hanmei@example.com",
                          "reply_channel": "email"})
    got = system.get("intake", "/v1/complaints/" + no).json()
    assert (got["cause"], got["brand"], got["area"], got["recording_ref"]) == \
        ("staff_behaviour", "全球通", "rural", "REC-2026-0001")
    assert got["gravity"] is True and got["urgency"] is True and got["breadth"] is False
    assert got["customer_signed"] is True
    assert got["customer"]["email"] == "hanmei@example.com"
    assert got["customer"]["reply_channel"] == "email"
