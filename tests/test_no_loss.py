"""Issue 2, test 3: nothing lost, nothing doubled — 2,000 complaints submitted
concurrently while the router and analytics are each SIGKILLed and restarted."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import complaint, wait_for

N = 2000
REGION = "440305"  # 深圳市南山区: this test's orders only


def test_two_thousand_complaints_survive_kills(system):
    pg = system.pg
    before_summary = system.get("analytics", "/v1/kpi/summary?region=" + REGION).json()
    results = []
    lock = threading.Lock()
    local = threading.local()

    def submit(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        body = complaint(region=REGION,
                         customer={"name": "客户%d" % i, "phone": "139%08d" % i,
                                   "home_region": REGION},
                         title="第%d号投诉" % i)
        for attempt in range(5):
            try:
                r = s.post(system["intake"].url("/v1/complaints"), json=body,
                           headers=system.headers(), timeout=30)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        with lock:
            results.append((r.status_code, r.json()))

    def chaos():
        wait_for(lambda: len(results) >= 500, timeout=120, interval=0.01, what="500 submitted")
        system["router"].kill()
        time.sleep(0.5)
        system["router"].start()
        wait_for(lambda: len(results) >= 1200, timeout=120, interval=0.01, what="1200 submitted")
        system["analytics"].kill()
        time.sleep(0.5)
        system["analytics"].start()

    t = threading.Thread(target=chaos)
    t.start()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(submit, range(N)))
    t.join()

    assert [s for s, _ in results if s != 201] == []
    orders = {j["order_no"] for _, j in results}
    assert len(orders) == N

    def count(sql):
        return pg.scalar(sql, (REGION,))

    assert count("SELECT count(*) FROM intake.complaints WHERE region = %s") == N
    wait_for(lambda: count("SELECT count(*) FROM router.work_orders WHERE region = %s") == N,
             timeout=120, what="2000 work orders")
    wait_for(lambda: count("SELECT count(*) FROM handler.orders WHERE region = %s") == N,
             timeout=120, what="2000 orders at the handler")
    # Each dispatched exactly once: one WorkOrderDispatched per order.
    wait_for(lambda: pg.scalar(
        "SELECT count(DISTINCT order_no) FROM router.outbox WHERE type = 'WorkOrderDispatched' "
        "AND order_no = ANY(%s)", (list(orders),)) == N, timeout=120, what="2000 dispatched")
    assert pg.scalar("SELECT count(*) FROM router.outbox WHERE type = 'WorkOrderDispatched' "
                     "AND order_no = ANY(%s)", (list(orders),)) == N
    assert pg.scalar("SELECT count(*) FROM router.outbox WHERE type = 'WorkOrderCreated' "
                     "AND order_no = ANY(%s)", (list(orders),)) == N
    # 2,000 SMS at the gateway, none twice.
    def sms_for_batch():
        return [m for m in system.sms.messages() if m["body"].get("order_no") in orders]
    wait_for(lambda: len({m["body"]["order_no"] for m in sms_for_batch()}) == N, timeout=120,
             what="2000 SMS")
    time.sleep(1)
    assert len(sms_for_batch()) == N
    # Analytics says 2,000.
    def analytics_done():
        s = system.get("analytics", "/v1/kpi/summary?region=" + REGION).json()
        return s["received"] - before_summary["received"] == N and \
            s["dispatched"] - before_summary["dispatched"] == N
    wait_for(analytics_done, timeout=120, what="analytics 2000")


def test_database_outage_answers_503_and_stores_nothing_behind_the_clients_back(system):
    """With Postgres down, intake says so at once instead of holding the request
    (a client that times out and retries would otherwise create a duplicate);
    when Postgres returns, everything resumes by itself."""
    pg = system.pg
    before = pg.scalar("SELECT count(*) FROM intake.complaints")
    pg.stop()
    try:
        def refused():
            try:
                r = requests.post(system["intake"].url("/v1/complaints"), json=complaint(),
                                  headers=system.headers(), timeout=15)
            except requests.RequestException:
                return None
            # (a Response is falsy for 4xx/5xx: return its body)
            return r.json() if r.status_code == 503 else None
        err = wait_for(refused, timeout=30, what="503 while the database is down")
        assert err["error"]["code"] == "unavailable"
        assert requests.get(system["intake"].url("/readyz"), timeout=5).status_code == 503
    finally:
        pg.start()
    wait_for(lambda: requests.get(system["intake"].url("/readyz"), timeout=5).status_code == 200,
             timeout=60, what="intake ready again")
    time.sleep(1)
    assert pg.scalar("SELECT count(*) FROM intake.complaints") == before
    r = system.post("intake", "/v1/complaints", complaint(title="恢复后的投诉"))
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    # the rest of the system reconnected too: the order reaches the handler
    for name in ("router", "handler", "sla", "notifier", "analytics"):
        wait_for(lambda: requests.get(system[name].url("/readyz"), timeout=5).status_code == 200,
                 timeout=60, what=name + " ready again")
    wait_for(lambda: system.get("router", "/v1/orders/" + order_no).status_code == 200 and
             system.get("router", "/v1/orders/" + order_no).json()["state"] == "dispatched",
             timeout=60, what="dispatched after the outage")
