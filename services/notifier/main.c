/* kesu-notifier — customer notifications (R-38..R-41).
 *
 * Consumes intake's stream: for each ComplaintReceived it records, in the
 * consumer's transaction, one SMS receipt in notify.deliveries keyed
 * "<event_id>:customer:sms" (so a redelivered event is sent once). The
 * sender (sender.c) delivers pending rows to the HTTP gateway KESU_SMS_URL.
 * HTTP: list deliveries, retry a failed or dead one.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "sender.h"
#include "service.h"
#include "template.h"

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"

typedef struct {
  struct event_base *base;
  pg_conn *pg, *pg_send;
  auth_cache *auth;
  http_server *http;
  consumer *cons;
  sender *snd;
  bool gateway;
  metric *m_recorded, *m_applied, *m_no_phone;
} app;

/* "310000" → "31", "000000"/"" → "" (everything): the region prefix a scope
 * or region filter stands for (as auth_scope_covers reads it). */
static void region_prefix(const char *code, char *out, size_t len) {
  snprintf(out, len, "%s", code ? code : "");
  size_t n = strlen(out);
  while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0') out[n -= 2] = '\0';
}

/* --- the stream ----------------------------------------------------------- */

static int64_t tier_limit_ms(Kesu__V1__Tier t) {
  return t == KESU__V1__TIER__NATIONAL     ? 72 * 3600 * 1000LL
         : t == KESU__V1__TIER__PROVINCIAL ? 48 * 3600 * 1000LL
                                           : 24 * 3600 * 1000LL;
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  if (env->payload_case != KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED) return;
  const Kesu__V1__Complaint *c = env->complaint_received->complaint;
  if (!c) return;
  const char *phone = c->customer && c->customer->phone ? c->customer->phone : "";
  if (!*phone) {
    metric_add(a->m_no_phone, 1);
    return;
  }
  const char *order_no = *c->order_no ? c->order_no : env->order_no;
  int64_t promised = c->promised_by;
  if (!promised) promised = (c->accepted_at ? c->accepted_at : env->occurred_at) + tier_limit_ms(c->tier);
  char *body = template_receipt(order_no, promised);
  char key[128], now[24];
  snprintf(key, sizeof key, "%s:customer:sms", env->event_id);
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *region = *env->region ? env->region : c->region;
  const char *v[8] = {key,  order_no, region, env->type, phone, body,
                      a->gateway ? "pending" : "no_gateway", now};
  pg_tx_add(tx,
            "INSERT INTO notify.deliveries (delivery_key, order_no, region, event_type, recipient,"
            " channel, body, status, created_at, next_attempt_at)"
            " VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), $4, $5, 'sms', $6, $7,"
            " to_timestamp($8::bigint / 1000.0), to_timestamp($8::bigint / 1000.0))"
            " ON CONFLICT (delivery_key) DO NOTHING",
            8, v, NULL, NULL);
  free(body);
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  metric_add(a->m_applied, 1);
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED) {
    metric_add(a->m_recorded, 1);
    sender_kick(a->snd); /* coalesced: one pick after the batch */
  }
}

/* --- HTTP ----------------------------------------------------------------- */

typedef struct {
  app *a;
  struct evhttp_request *req;
  bool admin;
  char id[24];
} http_q;

static http_q *new_q(app *a, struct evhttp_request *req, const auth_ctx *auth) {
  http_q *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->admin = auth && strcmp(auth->role, "admin") == 0;
  return q;
}

static json_t *json_time(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return json_null();
  char buf[40];
  clock_format_ms(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf);
  return json_string(buf);
}

static json_t *json_text(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static void on_list_rows(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    char masked[64];
    const char *recipient = PQgetvalue(r, i, 4);
    if (!q->admin) {
      phone_mask(recipient, masked, sizeof masked);
      recipient = masked;
    }
    json_t *d = json_object();
    json_object_set_new(d, "id", json_integer(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
    json_object_set_new(d, "delivery_key", json_string(PQgetvalue(r, i, 1)));
    json_object_set_new(d, "order_no", json_text(r, i, 2));
    json_object_set_new(d, "channel", json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(d, "recipient", json_string(recipient));
    json_object_set_new(d, "status", json_string(PQgetvalue(r, i, 5)));
    json_object_set_new(d, "attempts", json_integer(atoi(PQgetvalue(r, i, 6))));
    json_object_set_new(d, "body", json_string(PQgetvalue(r, i, 7)));
    json_object_set_new(d, "sent_at", json_time(r, i, 8));
    json_object_set_new(d, "last_error", json_text(r, i, 9));
    json_object_set_new(d, "event_type", json_string(PQgetvalue(r, i, 10)));
    json_object_set_new(d, "created_at", json_time(r, i, 11));
    json_object_set_new(d, "next_attempt_at", json_time(r, i, 12));
    json_array_append_new(arr, d);
  }
  http_reply_json(q->req, 200, json_pack("{s:o}", "deliveries", arr));
  free(q);
}

static const char *const statuses[] = {"pending", "sent", "failed", "dead", "no_gateway"};

static void h_list(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                   void *arg) {
  app *a = arg;
  const char *order_no = http_query(req, "order_no");
  const char *status = http_query(req, "status");
  if (status) {
    bool ok = false;
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
      if (strcmp(status, statuses[i]) == 0) ok = true;
    if (!ok) {
      http_reply_error(req, 422, "invalid_value",
                       "status must be pending, sent, failed, dead or no_gateway", "status");
      return;
    }
  }
  char prefix[64];
  region_prefix(strcmp(auth->role, "admin") == 0 ? "" : auth->scope, prefix, sizeof prefix);
  http_q *q = new_q(a, req, auth);
  const char *v[3] = {order_no ? order_no : "", status ? status : "", prefix};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT id, delivery_key, order_no, channel, recipient, status, attempts, body, " MS(
                "sent_at") ", last_error, event_type, " MS("created_at") ", " MS("next_attempt_at")
            " FROM notify.deliveries"
            " WHERE ($1 = '' OR order_no = $1) AND ($2 = '' OR status = $2)"
            "   AND ($3 = '' OR region LIKE $3 || '%')"
            " ORDER BY id DESC LIMIT 500",
            3, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_list_rows, q);
}

static void on_retried(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *upd = rs->res[0], *cur = rs->res[1];
  if (PQntuples(upd) == 1) {
    sender_kick(q->a->snd);
    http_reply_json(q->req, 200,
                    json_pack("{s:I, s:s}", "id", (json_int_t)strtoll(q->id, NULL, 10), "status",
                              "pending"));
  } else if (PQntuples(cur) == 1) {
    char msg[128];
    snprintf(msg, sizeof msg, "delivery is %s; only failed or dead deliveries can be retried",
             PQgetvalue(cur, 0, 0));
    http_reply_error(q->req, 409, "conflict", msg, NULL);
  } else {
    http_reply_error(q->req, 404, "not_found", "no such delivery", NULL);
  }
  free(q);
}

static void h_retry(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                    void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0) {
    http_reply_error(req, 403, "forbidden", "only an admin may retry deliveries", NULL);
    return;
  }
  char *end;
  long long id = strtoll(segs[0], &end, 10);
  if (*end || id <= 0 || end == segs[0]) {
    http_reply_error(req, 404, "not_found", "no such delivery", NULL);
    return;
  }
  if (!a->gateway) {
    http_reply_error(req, 409, "conflict", "no SMS gateway is configured (KESU_SMS_URL)", NULL);
    return;
  }
  http_q *q = new_q(a, req, auth);
  snprintf(q->id, sizeof q->id, "%lld", id);
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[2] = {q->id, now};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "UPDATE notify.deliveries SET status = 'pending', attempts = 0,"
            " next_attempt_at = to_timestamp($2::bigint / 1000.0)"
            " WHERE id = $1::bigint AND status IN ('failed', 'dead') RETURNING id",
            2, v, NULL, NULL);
  pg_tx_add(tx, "SELECT status FROM notify.deliveries WHERE id = $1::bigint", 1, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_retried, q);
}

static bool is_ready(void *arg) {
  app *a = arg;
  return pg_conn_ready(a->pg) && pg_conn_ready(a->pg_send) && a->cons && consumer_live(a->cons);
}

static void metrics_cb(struct evbuffer *out, void *arg) {
  app *a = arg;
  evbuffer_add_printf(out,
                      "# HELP kesu_notify_consumer_offset Last intake seq applied\n"
                      "# TYPE kesu_notify_consumer_offset gauge\n"
                      "kesu_notify_consumer_offset{producer=\"intake\"} %" PRIu64 "\n"
                      "# HELP kesu_notify_inflight SMS transfers in flight\n"
                      "# TYPE kesu_notify_inflight gauge\n"
                      "kesu_notify_inflight %zu\n",
                      a->cons ? consumer_offset(a->cons) : 0, sender_inflight(a->snd));
}

int main(void) {
  struct event_base *base = service_init("notifier");
  app a = {.base = base};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *url = cfg_str("KESU_SMS_URL", "");
  a.gateway = url && *url;
  a.m_recorded = metric_counter("notify_recorded_total", "Deliveries recorded from events");
  a.m_applied = metric_counter("notify_events_applied_total", "Intake events applied");
  a.m_no_phone = metric_counter("notify_no_phone_total", "Complaints without a phone to notify");

  a.pg = pg_conn_new(base, cfg_pg_conninfo("notifier"), "notifier");
  a.pg_send = pg_conn_new(base, cfg_pg_conninfo("notifier"), "notifier-sender");
  a.auth = auth_cache_new(base, a.pg);
  char host[128];
  int port;
  cfg_http_listen("NOTIFIER", PORT_NOTIFIER_HTTP, host, sizeof host, &port);
  a.http = http_server_new(base, host, port, a.auth);
  if (!a.http) return 1;
  http_route(a.http, EVHTTP_REQ_GET, "/v1/deliveries", 0, h_list, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/deliveries/*/retry", 0, h_retry, &a);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  a.snd = sender_new(base, a.pg_send, url);
  consumer_config cc = {.schema = "notify",
                        .producer = "intake",
                        .pub_endpoint = cfg_endpoint("KESU_INTAKE_PUB", PORT_INTAKE_PUB),
                        .replay_endpoint = cfg_endpoint("KESU_INTAKE_REPLAY", PORT_INTAKE_REPLAY),
                        .apply = on_apply,
                        .committed = on_committed,
                        .arg = &a};
  a.cons = consumer_new(base, a.pg, &cc);
  if (!a.cons) return 1;

  int rc = service_run(base);

  consumer_destroy(&a.cons);
  sender_destroy(&a.snd);
  http_server_destroy(&a.http);
  auth_cache_destroy(&a.auth);
  pg_conn_destroy(&a.pg);
  pg_conn_destroy(&a.pg_send);
  event_base_free(base);
  curl_global_cleanup();
  return rc;
}
