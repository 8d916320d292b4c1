"""Issue 3: the handler's workbench page in headless Chromium — a staff member
opens it, finds the order in the queue (with its countdown), opens the detail
and history, signs it, closes it with an answer; the result is checked through
the router's API. A refused action shows the server's Chinese message and is
listed under 被拒操作 with it; a second order is transferred with a reason
through the form; the header says whether the centre is reachable and what
waits for it; the queue sorts by priority then time left and paints overdue
orders red. A
screenshot is kept in tests/artifacts/workbench.png (and the made-up queue
in workbench-queue.png)."""
import json
import os
import re
import shutil
import subprocess

import pytest
import requests

from conftest import ARTIFACTS, ROOT, complaint, wait_for

NODE = shutil.which("node")

needs_browser = pytest.mark.skipif(
    not NODE or not os.path.exists("/usr/bin/chromium")
    or not os.path.isdir(os.path.join(ROOT, "node_modules", "playwright-core")),
    reason="needs node, Debian chromium and `make web` (make test provides all three)")


def test_workbench_static_files(system):
    h = system["handler"]
    r = requests.get(h.url("/"), timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "客诉工作台" in r.text
    r = requests.get(h.url("/web/workbench.js"), timeout=5)
    assert r.status_code == 200 and "javascript" in r.headers["Content-Type"]
    assert requests.get(h.url("/web/workbench.css"), timeout=5).status_code == 200
    for bad in ("/web/..%2Fweb.c", "/web/.hidden", "/web/nope.js"):
        assert requests.get(h.url(bad), timeout=5).status_code == 404, bad
    # the data behind the page still needs a token
    assert requests.get(h.url("/v1/queue"), timeout=5).status_code == 401


@needs_browser
def test_workbench_sign_and_close_in_browser(system):
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "workbench.png")
    # 黄浦 (310101 → unit sh-hp) is this test's own district: its staff queue
    # holds only this test's orders
    staff = system.token("wb-staff", "handler", "310101")
    r = system.post("intake", "/v1/complaints", complaint(
        region="310101", title="工作台测试：宽带频繁掉线",
        customer={"name": "工作台", "phone": "13900001234", "home_region": "310101",
                  "address": "上海市黄浦区南京东路100号"}))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    r = system.post("intake", "/v1/complaints", complaint(
        region="310101", title="工作台测试：地址不属本区",
        customer={"name": "转派", "phone": "13900001235", "home_region": "310101",
                  "address": "上海市徐汇区漕溪北路1号"}))
    assert r.status_code == 201, r.text
    no2 = r.json()["order_no"]
    wait_for(lambda: system.get("router", "/v1/orders/" + no2).json().get("state") == "dispatched",
             what="second order dispatched")
    wait_for(lambda: any(o["order_no"] == no for o in
                         system.get("handler", "/v1/queue", token=staff).json()["orders"]),
             what="order in the handler queue")
    wait_for(lambda: system.get("router", "/v1/orders/" + no).json().get("state") == "dispatched",
             what="dispatched")

    p = subprocess.run([NODE, os.path.join(ROOT, "tests", "browser", "workbench.js"),
                        system["handler"].url(""), staff, no, shot, no2],
                       capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "failure" not in out, json.dumps(out, ensure_ascii=False)
    assert out["pageErrors"] == [], out
    # The one deliberate refusal (sign after close) is a 409 the browser logs;
    # nothing else may reach the console.
    assert [e for e in out["consoleErrors"] if "status of 409" not in e] == [], out
    assert len(out["consoleErrors"]) <= 1, out

    assert out["title"].startswith("客诉工作台")
    assert "token=" not in out["urlAfterLoad"] and out["tokenStored"] == staff
    # the queue row: no, title, customer, time left counting down
    assert out["queueRow"][1] == no and out["queueRow"][2] == "工作台测试：宽带频繁掉线"
    assert out["queueRow"][3] == "工作台"
    assert re.fullmatch(r"(\d+天)?\d\d:\d\d:\d\d", out["countdown"][0]), out["countdown"]
    assert out["countdown"][0] != out["countdown"][1]
    # the page's order: priority (when the API gives one; higher first), then time left
    def key(x):
        no, left, prio = (x + [None])[:3]
        return (prio is None, -(prio or 0), left is None, left or 0, no)
    api = [x[0] for x in sorted(out["apiQueue"], key=key)]
    assert [n for n in out["pageOrder"] if n in api] == [n for n in api if n in out["pageOrder"]]
    assert "13900001234" in out["detailTitle"] and "上海市黄浦区南京东路100号" in out["detailTitle"]
    assert out["stateBefore"] == "dispatched" and out["historyBefore"] in ([], ["派单"])

    assert out["sign"]["cls"] == "ok" and "处理中" in out["sign"]["text"], out["sign"]
    assert out["close"]["cls"] == "ok" and "已结办" in out["close"]["text"], out["close"]
    assert out["historyAfter"][-4:] == ["签收", "反馈", "答复", "结办"], out["historyAfter"]
    assert out["stateShown"].startswith("已结办") and out["leftQueue"]
    assert out["refused"]["cls"] == "error" and "已结办" in out["refused"]["text"], out["refused"]

    # through the API: the router holds the result
    o = system.get("router", "/v1/orders/" + no).json()
    assert o["state"] == "closed" and o["wf_state"] == "closed" and o["closed_at"], o
    h = system.get("router", "/v1/orders/%s/history" % no).json()["history"]
    assert [s["action"] for s in h] == ["dispatch", "sign", "feedback", "answer", "close"]
    assert {s["actor"] for s in h[1:]} == {"wb-staff"}
    assert h[-1]["to_state"] == "closed"
    assert any(s.get("answer") == "已为客户修复宽带线路并致电确认，客户表示认可。" for s in h)
    hh = system.get("handler", "/v1/orders/" + no, token=staff).json()
    assert hh["state"] == "closed"
    assert [a["action"] for a in hh["actions"]] == ["sign", "close", "sign"]
    assert [a["ok"] for a in hh["actions"]] == [True, True, False]

    # the refused sign is listed with the centre's reason; the link is up
    assert out["refusedRow"][1] == no and out["refusedRow"][2] == "签收", out["refusedRow"]
    refusal = hh["actions"][2]["message"]
    assert refusal and out["refusedRow"][4] == refusal and "已结办" in refusal, out["refusedRow"]
    assert out["link"]["up"] == "true" and out["link"]["text"].startswith("中心连接正常"), out
    assert out["arriveButton"] == "到达现场"
    # the second order, transferred with a reason through the form
    assert out["transfer"]["cls"] == "ok" and "sh-xh" in out["transfer"]["text"], out["transfer"]
    assert ["转派", "sh-hp → sh-xh", "用户地址属徐汇区，转徐汇分公司处理"] in out["transferHistory"]
    o2 = system.get("router", "/v1/orders/" + no2).json()
    assert o2["holder_unit"] == "sh-xh", o2
    t = [s for s in system.get("router", "/v1/orders/%s/history" % no2).json()["history"]
         if s["action"] == "transfer"]
    assert [(s["from_unit"], s["to_unit"], s["reason"], s["actor"]) for s in t] == [
        ("sh-hp", "sh-xh", "用户地址属徐汇区，转徐汇分公司处理", "wb-staff")]

    # sort: priority first, then time left, no deadline last; overdue in red
    assert out["fakeOrder"] == ["F-VIP", "F-LATE", "F-LATER", "F-NODUE"], out["fakeOrder"]
    assert out["overdue"]["text"].startswith("超时 ") and "overdue" in out["overdue"]["cls"]
    assert out["overdue"]["color"] == "rgb(192, 57, 43)"
    assert "overdue" not in out["notOverdue"]["cls"]
    # the centre out of reach: said in the header with what waits; refusals listed
    assert out["linkDown"] == "中心连接中断，操作将在恢复后自动提交 · 3 项待中心确认", out["linkDown"]
    assert out["fakeRefused"] == [["01-01 09:05", "F-LATE", "结办", "甲",
                                   "工单已由「sh-xh」办理，本单位不能操作"]], out["fakeRefused"]
    assert os.path.getsize(shot) > 10000 and os.path.getsize(out["queueShot"]) > 10000
