"""Issue 2, test 4: bad input gets a 4xx JSON error naming the problem, nothing
is stored, and the service stays healthy."""
import json

import pytest
import requests

from conftest import complaint


def stored(system):
    return system.pg.scalar("SELECT count(*) FROM intake.complaints")


def post_raw(system, data, content_type="application/json", token="admin", headers=None):
    h = {"Content-Type": content_type}
    if token == "admin":
        h["Authorization"] = "Bearer " + system.admin
    elif token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    return requests.post(system["intake"].url("/v1/complaints"), data=data, headers=h, timeout=10)


def body(**over):
    return json.dumps(complaint(**over), ensure_ascii=False).encode("utf-8")


def without(key):
    b = complaint()
    del b[key]
    return json.dumps(b, ensure_ascii=False).encode()


CASES = [
    ("invalid JSON", lambda s: post_raw(s, b'{"channel": "hotline",'), 400, "invalid_json", None),
    ("not an object", lambda s: post_raw(s, b'[1,2]'), 400, "invalid_json", None),
    ("wrong content type", lambda s: post_raw(s, body(), "text/plain"), 415,
     "unsupported_media_type", None),
    ("body over the limit", lambda s: post_raw(s, body(content="投" * 30000)), 413,
     "body_too_large", None),
    ("invalid UTF-8", lambda s: post_raw(s, body(title="X").replace(b'"X"', b'"\xcd\xb6\xcb\xdf"')),
     400, "invalid_utf8", None),
    ("missing field", lambda s: post_raw(s, without("region")), 422, "missing_field", "region"),
    ("missing customer phone", lambda s: post_raw(s, body(customer={"name": "张三",
                                                                     "home_region": "310115"})),
     422, "missing_field", "customer.phone"),
    ("unknown region", lambda s: post_raw(s, body(region="999999")), 422, "unknown_region",
     "region"),
    ("over-long title", lambda s: post_raw(s, body(title="投诉" * 51)), 422, "too_long", "title"),
    ("wrong type", lambda s: post_raw(s, body(title=123)), 422, "wrong_type", "title"),
    ("wrong type of object", lambda s: post_raw(s, body(customer="张三")), 422, "wrong_type",
     "customer"),
    ("unknown field refused", lambda s: post_raw(s, body(colour="red")), 422, "unknown_field",
     "colour"),
    ("unknown channel", lambda s: post_raw(s, body(channel="pigeon")), 422, "invalid_value",
     "channel"),
    # a hand-off needs the customer's address (an on-the-spot answer does not)
    ("hand-off without address", lambda s: post_raw(s, body(customer={
        "name": "张三", "phone": "13800138000", "home_region": "310115", "address": None})),
     422, "missing_field", "customer.address"),
    # the rest of R-07
    ("unknown cause", lambda s: post_raw(s, body(cause="天气原因")), 422, "invalid_value", "cause"),
    ("unknown area", lambda s: post_raw(s, body(area="郊区")), 422, "invalid_value", "area"),
    ("priority factor not a boolean", lambda s: post_raw(s, body(urgency="是")), 422,
     "wrong_type", "urgency"),
    ("business line not the type's", lambda s: post_raw(s, body(business_line="power")), 422,
     "invalid_value", "business_line"),
    ("bad customer e-mail", lambda s: post_raw(s, body(customer={
        "name": "张三", "phone": "13800138000", "home_region": "310115", "address": "上海",
        "email": "张三at例子"})), 422, "invalid_value", "customer.email"),
    ("e-mail reply without e-mail", lambda s: post_raw(s, body(customer={
        "name": "张三", "phone": "13800138000", "home_region": "310115", "address": "上海",
        "reply_channel": "email"})), 422, "missing_field", "customer.email"),
    ("appeal fields on an ordinary complaint", lambda s: post_raw(s, body(
        appeal={"source_body": "工信部"})), 422, "invalid_value", "appeal"),
    ("appeal without appeal fields", lambda s: post_raw(s, body(stream="appeal")), 422,
     "missing_field", "appeal"),
    ("appeal of unknown nature", lambda s: post_raw(s, body(stream="appeal", appeal={
        "source_body": "工信部", "nature": "心情"})), 422, "invalid_value", "appeal.nature"),
    ("escalated answered on the spot", lambda s: post_raw(s, body(
        stream="escalated", answer_on_spot="已答复")), 422, "invalid_value", "answer_on_spot"),
    ("no token", lambda s: post_raw(s, body(), token=None), 401, "unauthorized", None),
    ("invalid token", lambda s: post_raw(s, body(), token="kesu_" + "0" * 40), 401,
     "unauthorized", None),
]


@pytest.mark.parametrize("name,send,status,code,field", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_stored(system, name, send, status, code, field):
    n = stored(system)
    r = send(system)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]
    assert err["field"] == field
    assert stored(system) == n
    assert requests.get(system["intake"].url("/healthz"), timeout=5).status_code == 200


def test_idempotency_key(system):
    n = stored(system)
    key = {"Idempotency-Key": "e2e-idem-1"}
    a = post_raw(system, body(), headers=key)
    b = post_raw(system, body(), headers=key)
    assert a.status_code == 201 and b.status_code == 201
    assert a.json() == b.json()
    assert stored(system) == n + 1
    c = post_raw(system, body(title="另一个问题"), headers=key)
    assert c.status_code == 409
    assert c.json()["error"]["code"] == "idempotency_conflict"
    assert stored(system) == n + 1


def test_unknown_complaint_is_404(system):
    r = system.get("intake", "/v1/complaints/KS000000000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
