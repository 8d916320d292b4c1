"""Issue 3: routing rules on every dimension (region prefix, business line/type,
problem type, channel, customer level), loaded with `kesuctl load rules=FILE`
while the router runs: the most specific rule decides the unit that holds a new
order (docs/internals.md "Routing rules"); a bad file changes nothing."""
import os
import re
import tempfile

import pytest
import requests

from conftest import ROOT, complaint, wait_for

ADDR = "上海市浦东新区张杨路100号"
DEFAULT = os.path.join(ROOT, "data", "routing_rules.csv")

ROAMING = "31,,,roaming,,,sh-type-roaming,0,上海漫游问题 → 漫游投诉工单处理责任部门"
GM_HOTLINE = "31,,,,gm_hotline,,sh,0,上海总经理热线 → 省客服中心"
DIAMOND = "31,,,,,diamond,sh-vip,0,上海钻石卡客户 → VIP专席"


def default_rows():
    with open(DEFAULT, encoding="utf-8") as f:
        return [l for l in f.read().splitlines() if l and not l.startswith("#")][1:]


def metric(system, name):
    text = requests.get(system["router"].url("/metrics"), timeout=5).text
    m = re.search(r"^kesu_%s (\d+)$" % name, text, re.M)
    return int(m.group(1)) if m else -1


def write_rules(rows, header="region_prefix,business_line,business_type,problem_type,channel,"
                "customer_level,unit_id,priority,note"):
    fd, path = tempfile.mkstemp(prefix="rules-", suffix=".csv")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# 测试用路由规则\n" + header + "\n" + "\n".join(rows) + "\n")
    return path


def load(system, extra, check=True):
    """Loads the default rules plus extra from a temp CSV; once accepted, waits
    until the running router holds exactly those rules."""
    rows = default_rows() + extra
    path = write_rules(rows)
    try:
        before = metric(system, "router_routing_rule_loads_total")
        r = system.kesuctl("load", "rules=" + path, check=False)
    finally:
        os.unlink(path)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: metric(system, "router_routing_rule_loads_total") > before and
                 metric(system, "router_routing_rules") == len(rows),
                 what="router reloaded %d rules" % len(rows))
    return r


@pytest.fixture(scope="module", autouse=True)
def restore_default_rules(system):
    yield
    before = metric(system, "router_routing_rule_loads_total")
    system.kesuctl("load", "rules")
    wait_for(lambda: metric(system, "router_routing_rule_loads_total") > before and
             metric(system, "router_routing_rules") == len(default_rows()),
             what="default rules back")


def create(system, phone, **over):
    cust = {"name": "王芳", "phone": phone, "home_region": "310115", "address": ADDR}
    cust.update(over.pop("customer", {}))
    r = system.post("intake", "/v1/complaints", complaint(customer=cust, **over))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    o = wait_for(lambda: (lambda x: x.json() if x.status_code == 200 else None)(
        system.get("router", "/v1/orders/" + no)), what="order %s created" % no)
    return no, o


def held_by(system, no, unit):
    def check():
        r = system.get("handler", "/v1/orders/" + no)
        return r.ok and r.json()["unit_id"] == unit and r.json()["state"] == "open"
    wait_for(check, what="order %s at the handler for unit %s" % (no, unit))


def rule_id(system, unit, **dims):
    """id in router.routing_rules of the loaded rule for unit with these dimension values."""
    where = " AND ".join(["unit_id = %s"] + ["%s = %%s" % k for k in dims])
    return system.pg.scalar("SELECT id FROM router.routing_rules WHERE " + where,
                            (unit,) + tuple(dims.values()))


def first_dispatch(system, no):
    r = system.get("router", "/v1/orders/%s/history" % no)
    assert r.status_code == 200, r.text
    h = r.json()["history"][0]
    return h["to_unit"], h["details"]


def test_problem_type_rule_sends_the_order_to_the_type_owner_department(system):
    load(system, [ROAMING])
    no, o = create(system, "13822220001", problem_type="roaming", business_type="mobile")
    assert (o["holder_unit"], o["dispatcher_unit"], o["problem_type"]) == \
        ("sh-type-roaming", "sh", "roaming")
    # the history names the rule that decided
    assert first_dispatch(system, no) == ("sh-type-roaming", {
        "by": "routing_rules", "rule_id": rule_id(system, "sh-type-roaming",
                                                  problem_type="roaming")})
    held_by(system, no, "sh-type-roaming")
    # another problem type from the same county still follows the county's region rule
    no, o = create(system, "13822220002", problem_type="network")
    assert o["holder_unit"] == "sh-pd"
    # the rule names Shanghai: roaming in Beijing stays with Beijing's units
    no, o = create(system, "13822220003", problem_type="roaming", business_type="mobile",
                   region="110105", customer={"home_region": "110105"})
    assert o["holder_unit"] == "bj-cy"


def test_channel_and_customer_level_rules_win_over_a_region_rule(system):
    load(system, [GM_HOTLINE, DIAMOND])
    # 310115 has a region-only rule (sh-pd) with a longer prefix than "31"
    _, o = create(system, "13822220011")
    assert o["holder_unit"] == "sh-pd"
    no, o = create(system, "13822220012", channel="gm_hotline")
    assert (o["holder_unit"], o["channel"]) == ("sh", "gm_hotline")
    held_by(system, no, "sh")
    no, o = create(system, "13822220013", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-vip"
    assert first_dispatch(system, no) == ("sh-vip", {
        "by": "routing_rules", "rule_id": rule_id(system, "sh-vip", customer_level="diamond")})
    held_by(system, no, "sh-vip")
    # both rules match: same number of dimensions and prefix, same priority -> the first row
    _, o = create(system, "13822220014", channel="gm_hotline", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh"
    # ... and a higher priority wins that tie
    load(system, [GM_HOTLINE, DIAMOND.replace(",sh-vip,0,", ",sh-vip,5,")])
    _, o = create(system, "13822220015", channel="gm_hotline", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-vip"


def test_a_rule_change_applies_to_the_next_complaint_without_restart(system):
    pid = system["router"].proc.pid
    load(system, [])
    _, o = create(system, "13822220021", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-pd"
    load(system, [DIAMOND])
    _, o = create(system, "13822220022", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-vip"
    load(system, [])
    _, o = create(system, "13822220023", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-pd"
    assert system["router"].proc.pid == pid and system["router"].proc.poll() is None


@pytest.mark.parametrize("phone, bad, why", [
    ("13822220030", "31,,,,,diamond,no-such-unit,0,", ":13: unit_id 'no-such-unit' is not a unit in router.units"),
    ("13822220031", "99,,,,,,sh,0,", ":13: region_prefix '99' is not the prefix of any region"),
    ("13822220032", "31,,,,pigeon,,sh-vip,0,", ":13: channel 'pigeon' is not a channel"),
    ("13822220033", "31,,,teleport,,,sh,0,", ":13: problem_type 'teleport' is not a problem type"),
    ("13822220034", "31,,cinema,,,,sh,0,", ":13: business_type 'cinema' is not a business type"),
    ("13822220035", "31,,,roaming,,,sh-type-roaming,0,重复", ":13: rule has the same conditions and priority as line 12"),
])
def test_a_bad_rules_file_is_refused_and_the_old_rules_still_apply(system, phone, bad, why):
    load(system, [ROAMING])
    loads = metric(system, "router_routing_rule_loads_total")
    # line 1 comment, 2 header, 3.. default rows: put the bad row at line 13 after ROAMING
    rows = default_rows()[:9] + [ROAMING, bad] + default_rows()[9:]
    path = write_rules(rows)
    try:
        r = system.kesuctl("load", "rules=" + path, check=False)
    finally:
        os.unlink(path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert path + why in r.stderr, r.stderr
    assert "load: nothing written" in r.stderr
    # nothing changed: no reload, and the old rules decide the next complaint
    _, o = create(system, phone, problem_type="roaming",
                  business_type="mobile", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-type-roaming"
    assert metric(system, "router_routing_rule_loads_total") == loads
    assert metric(system, "router_routing_rules") == len(default_rows()) + 1


def test_every_region_still_needs_a_region_only_rule(system):
    # dropping the catch-all leaves e.g. Hainan 46xxxx without a region-only rule
    # (a rule that also asks for a channel does not route every complaint)
    rows = [r for r in default_rows() if not r.startswith(",") and not r.startswith("46,")]
    rows.append("46,,,,hotline,,hi,0,海南热线")
    path = write_rules(rows)
    try:
        r = system.kesuctl("load", "rules=" + path, check=False)
    finally:
        os.unlink(path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no region-only rule routes region(s) 460000" in r.stderr, r.stderr


def load_file(system, rows, header, expect):
    path = write_rules(rows, header=header)
    try:
        before = metric(system, "router_routing_rule_loads_total")
        r = system.kesuctl("load", "rules=" + path, check=False)
    finally:
        os.unlink(path)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: metric(system, "router_routing_rule_loads_total") > before and
             metric(system, "router_routing_rules") == expect, what="reloaded")


def test_a_file_with_only_some_columns_loads(system):
    # the columns are named by the header: the old region_prefix,unit_id,priority file
    # still loads, and a file may name its columns in any order
    split = [r.split(",") for r in default_rows()]
    load_file(system, [",".join([f[0], f[6], f[7]]) for f in split],
              "region_prefix,unit_id,priority", len(split))
    _, o = create(system, "13822220041", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-pd"
    load_file(system, [",".join([f[6], "", f[0]]) for f in split] + ["sh-vip,DIAMOND,310000"],
              "unit_id,customer_level,region_prefix", len(split) + 1)
    _, o = create(system, "13822220042", customer={"level": "diamond"})
    assert o["holder_unit"] == "sh-vip"


VIP_CLASS = "31,,,,,vip,sh-vip,0,上海VIP客户（各级别）→ VIP专席"


def test_a_vip_rule_covers_every_vip_level_and_an_exact_level_beats_it(system):
    load(system, [VIP_CLASS, "31,,,,,gold,sh,0,上海金卡客户 → 省客服中心"])
    vip = rule_id(system, "sh-vip", customer_level="vip")
    for phone, level, unit in (("13822220031", "diamond", "sh-vip"),
                               ("13822220032", "silver", "sh-vip"),
                               ("13822220033", "3G", "sh-vip"),
                               ("13822220034", "gold", "sh"),
                               ("13822220035", "ordinary", "sh-pd")):
        no, o = create(system, phone, customer={"level": level})
        assert o["holder_unit"] == unit, level
        if unit == "sh-vip":
            assert first_dispatch(system, no) == ("sh-vip", {"by": "routing_rules",
                                                            "rule_id": vip}), level
