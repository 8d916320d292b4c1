/* kesu-analytics — KPI facts and the live event stream.
 *
 * Consumes intake, router and sla. Each event is one upsert into
 * analytics.orders (the events of different producers arrive in any order,
 * so every one creates the row if missing and fills only what it knows), in
 * the consumer's batch transaction. After commit, every event is fanned out
 * to the SSE clients of /v1/stream.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "kpi.h"
#include "web.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "service.h"
#include "sse.h"

enum { RING_EVENTS = 20000, NPRODUCERS = 3 };

typedef struct app app;

typedef struct {
  app *a;
  const char *producer;
  consumer *cons;
} feed;

struct app {
  struct event_base *base;
  pg_conn *pg;
  auth_cache *auth;
  http_server *http;
  feed feeds[NPRODUCERS];
  sse_hub *sse;
};

static void region_prefix(const char *code, char *out, size_t len) {
  snprintf(out, len, "%s", code ? code : "");
  size_t n = strlen(out);
  while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0') out[n -= 2] = '\0';
}

/* --- facts ---------------------------------------------------------------- */

static const char *nz(const char *s) { return s && *s ? s : NULL; }

enum {
  F_ORDER, F_REGION, F_CHANNEL, F_BTYPE, F_TIER, F_RECEIVED, F_UNIT, F_DISPATCHED, F_CLOSED,
  F_WARNED, F_BREACHED, F_KIND, F_STREAM, F_LEVEL, F_PROMISED, F_FIRST_UNIT, F_MOVES, F_MISROUTES,
  F_BREACH_DUE, F_STEP_AT, NF
};

#define TS(n) "to_timestamp($" #n "::bigint / 1000.0)"
static const char *const SQL_UPSERT =
    "INSERT INTO analytics.orders AS o (order_no, region, channel, business_type, tier,"
    " received_at, unit_id, dispatched_at, closed_at, warned_at, breached_at, kind, stream,"
    " customer_level, promised_by, first_unit, moves, misroutes, breach_due, steps, last_step_at)"
    " VALUES ($1, $2, $3, $4, $5, " TS(6) ", $7, " TS(8) ", " TS(9) ", " TS(10) ", " TS(11) ","
    " $12, $13, $14, " TS(15) ", $16, coalesce($17::int, 0), coalesce($18::int, 0), " TS(19) ","
    " CASE WHEN $20::bigint IS NULL THEN 0 ELSE 1 END, " TS(20) ")"
    " ON CONFLICT (order_no) DO UPDATE SET"
    " region = COALESCE(o.region, EXCLUDED.region),"
    " channel = COALESCE(o.channel, EXCLUDED.channel),"
    " business_type = COALESCE(o.business_type, EXCLUDED.business_type),"
    " tier = COALESCE(o.tier, EXCLUDED.tier),"
    " received_at = COALESCE(o.received_at, EXCLUDED.received_at),"
    " unit_id = COALESCE(EXCLUDED.unit_id, o.unit_id),"
    " dispatched_at = COALESCE(o.dispatched_at, EXCLUDED.dispatched_at),"
    " closed_at = COALESCE(o.closed_at, EXCLUDED.closed_at),"
    " warned_at = COALESCE(o.warned_at, EXCLUDED.warned_at),"
    " breached_at = COALESCE(o.breached_at, EXCLUDED.breached_at),"
    " kind = COALESCE(o.kind, EXCLUDED.kind),"
    " stream = COALESCE(o.stream, EXCLUDED.stream),"
    " customer_level = COALESCE(o.customer_level, EXCLUDED.customer_level),"
    " promised_by = COALESCE(o.promised_by, EXCLUDED.promised_by),"
    " first_unit = COALESCE(o.first_unit, EXCLUDED.first_unit),"
    " moves = o.moves + EXCLUDED.moves,"
    " misroutes = o.misroutes + EXCLUDED.misroutes,"
    " breach_due = GREATEST(o.breach_due, EXCLUDED.breach_due),"
    " steps = o.steps + EXCLUDED.steps,"
    " last_step_at = GREATEST(o.last_step_at, EXCLUDED.last_step_at)";
#undef TS

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  (void)arg;
  /* Times as Unix ms text; NULL = unknown. Counters as int text. */
  const char *v[NF] = {0};
  char tbuf[NF][24];
#define SETMS(col, t)                                                                              \
  do {                                                                                             \
    if (t) {                                                                                       \
      snprintf(tbuf[col], sizeof tbuf[col], "%" PRId64, (int64_t)(t));                             \
      v[col] = tbuf[col];                                                                          \
    }                                                                                              \
  } while (0)
  v[F_ORDER] = nz(env->order_no);
  v[F_REGION] = nz(env->region);
  switch (env->payload_case) {
  case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: {
    const Kesu__V1__Complaint *c = env->complaint_received->complaint;
    if (!c) return;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    if (!v[F_REGION]) v[F_REGION] = nz(c->region);
    v[F_CHANNEL] = c->channel ? channel_name(c->channel) : NULL;
    v[F_BTYPE] = nz(c->business_type);
    v[F_TIER] = c->tier ? tier_name(c->tier) : NULL;
    v[F_KIND] = c->kind ? kind_name(c->kind) : NULL;
    v[F_STREAM] = c->stream ? stream_name(c->stream) : NULL;
    v[F_LEVEL] = c->customer ? nz(c->customer->level) : NULL;
    SETMS(F_RECEIVED, c->accepted_at ? c->accepted_at : env->occurred_at);
    SETMS(F_PROMISED, c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: {
    const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    if (!v[F_REGION]) v[F_REGION] = nz(c->region);
    v[F_CHANNEL] = c->channel ? channel_name(c->channel) : NULL;
    v[F_BTYPE] = nz(c->business_type);
    v[F_TIER] = c->tier ? tier_name(c->tier) : NULL;
    v[F_KIND] = c->kind ? kind_name(c->kind) : NULL;
    v[F_STREAM] = c->stream ? stream_name(c->stream) : NULL;
    v[F_LEVEL] = nz(c->customer_level);
    v[F_UNIT] = nz(c->unit_id);
    v[F_FIRST_UNIT] = nz(c->unit_id);
    SETMS(F_RECEIVED, c->accepted_at);
    SETMS(F_PROMISED, c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: {
    const Kesu__V1__WorkOrderDispatched *d = env->work_order_dispatched;
    if (nz(d->order_no)) v[F_ORDER] = d->order_no;
    /* the handler link's unit (a feedback goes back to the centre's handler):
     * the responsible unit comes from the router's steps instead */
    SETMS(F_DISPATCHED, env->occurred_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED: {
    const Kesu__V1__WorkOrderStepChanged *s = env->work_order_step_changed;
    if (nz(s->order_no)) v[F_ORDER] = s->order_no;
    const char *act = s->action ? s->action : "";
    bool misroute = !strcmp(act, "return") || !strcmp(act, "transfer");
    /* the first assignment (accepted → dispatched) is not a re-dispatch */
    bool first = s->from_state && !strcmp(s->from_state, "accepted");
    bool move = misroute || (!strcmp(act, "dispatch") && !first) || !strcmp(act, "escalate");
    /* unit = the responsible (handling) unit: the one dispatched, transferred
     * or escalated to — not the centre a feedback or a return goes back to */
    if (!strcmp(act, "dispatch") || !strcmp(act, "transfer") || !strcmp(act, "escalate"))
      v[F_UNIT] = nz(s->holder_unit);
    if (move) v[F_MOVES] = "1";
    if (misroute) v[F_MISROUTES] = "1";
    SETMS(F_STEP_AT, s->at ? s->at : env->occurred_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: {
    const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    SETMS(F_CLOSED, c->closed_at ? c->closed_at : env->occurred_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING:
    if (nz(env->sla_warning->order_no)) v[F_ORDER] = env->sla_warning->order_no;
    SETMS(F_WARNED, env->occurred_at);
    break;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED:
    if (nz(env->sla_breached->order_no)) v[F_ORDER] = env->sla_breached->order_no;
    SETMS(F_BREACHED, env->occurred_at);
    SETMS(F_BREACH_DUE, env->sla_breached->due_at);
    break;
  default:
    return;
  }
#undef SETMS
  if (!v[F_ORDER]) return;
  pg_tx_add(tx, SQL_UPSERT, NF, v, NULL, NULL);
}

/* --- live stream ------------------------------------------------------------ */

static void set_time(json_t *o, const char *key, int64_t ms) {
  if (!ms) return;
  char buf[40];
  clock_format_ms(ms, buf, sizeof buf);
  json_object_set_new(o, key, json_string(buf));
}

static void set_str(json_t *o, const char *key, const char *s) {
  if (s && *s) json_object_set_new(o, key, json_string(s));
}

static void sla_fields(json_t *o, Kesu__V1__Step step, const char *unit_id, int64_t started,
                       int64_t due, int64_t limit_s) {
  set_str(o, "step", step_name(step));
  set_str(o, "unit_id", unit_id);
  set_time(o, "started_at", started);
  set_time(o, "due_at", due);
  json_object_set_new(o, "limit_seconds", json_integer(limit_s));
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  feed *f = arg;
  const char *producer = nz(env->producer) ? env->producer : f->producer;
  const char *type = nz(env->type) ? env->type : envelope_type_name(env->payload_case);
  if (!*type) return;
  const char *region = env->region;
  json_t *o = json_object();
  json_object_set_new(o, "producer", json_string(producer));
  json_object_set_new(o, "seq", json_integer((json_int_t)env->seq));
  json_object_set_new(o, "type", json_string(type));
  json_object_set_new(o, "order_no", json_string(env->order_no));
  set_time(o, "occurred_at", env->occurred_at);
  switch (env->payload_case) {
  case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: {
    const Kesu__V1__Complaint *c = env->complaint_received->complaint;
    if (!c) break;
    if (!*region) region = c->region;
    if (!*env->order_no) json_object_set_new(o, "order_no", json_string(c->order_no));
    set_str(o, "kind", c->kind ? kind_name(c->kind) : NULL);
    set_str(o, "channel", c->channel ? channel_name(c->channel) : NULL);
    set_str(o, "tier", c->tier ? tier_name(c->tier) : NULL);
    set_str(o, "business_type", c->business_type);
    set_str(o, "problem_type", c->problem_type);
    set_str(o, "title", c->title);
    set_time(o, "accepted_at", c->accepted_at);
    set_time(o, "promised_by", c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: {
    const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
    if (!*region) region = c->region;
    set_str(o, "unit_id", c->unit_id);
    set_str(o, "tier", c->tier ? tier_name(c->tier) : NULL);
    set_str(o, "kind", c->kind ? kind_name(c->kind) : NULL);
    set_time(o, "accepted_at", c->accepted_at);
    set_time(o, "promised_by", c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: {
    const Kesu__V1__WorkOrderDispatched *d = env->work_order_dispatched;
    set_str(o, "unit_id", d->unit_id);
    set_str(o, "handler_id", d->handler_id);
    set_str(o, "dispatch_id", d->dispatch_id);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: {
    const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
    set_str(o, "unit_id", c->unit_id);
    set_str(o, "actor", c->actor);
    set_time(o, "closed_at", c->closed_at);
    set_time(o, "accepted_at", c->accepted_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING: {
    const Kesu__V1__SlaWarning *w = env->sla_warning;
    sla_fields(o, w->step, w->unit_id, w->started_at, w->due_at, w->limit_seconds);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED: {
    const Kesu__V1__SlaBreached *b = env->sla_breached;
    sla_fields(o, b->step, b->unit_id, b->started_at, b->due_at, b->limit_seconds);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED: {
    const Kesu__V1__SlaEscalated *e = env->sla_escalated;
    set_str(o, "step", step_name(e->step));
    set_str(o, "from_unit", e->from_unit);
    set_str(o, "to_unit", e->to_unit);
    set_time(o, "due_at", e->due_at);
    break;
  }
  default:
    break;
  }
  json_object_set_new(o, "region", json_string(region ? region : ""));
  char *data = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (data) sse_publish(f->a->sse, producer, env->seq, type, region, data);
  free(data);
}

/* --- HTTP ----------------------------------------------------------------- */

static bool valid_region(const char *r) {
  if (strlen(r) != 6) return false;
  for (const char *p = r; *p; p++)
    if (*p < '0' || *p > '9') return false;
  return true;
}

/* The region a request may look at: the asked one within the token's scope,
 * or the scope itself when asking for more than it covers. Returns false
 * (and replies 403/422) when they do not overlap. */
static bool effective_region(struct evhttp_request *req, const auth_ctx *auth, const char *asked,
                             char *out, size_t len) {
  if (asked && !valid_region(asked)) {
    http_reply_error(req, 422, "invalid_value", "region must be a 6-digit region code", "region");
    return false;
  }
  const char *scope = auth->scope && *auth->scope ? auth->scope : "000000";
  if (!asked) asked = "000000";
  if (auth_scope_covers(scope, asked)) {
    snprintf(out, len, "%s", asked);
  } else if (auth_scope_covers(asked, scope)) {
    snprintf(out, len, "%s", scope);
  } else {
    http_reply_error(req, 403, "forbidden", "region is outside your scope", "region");
    return false;
  }
  return true;
}

typedef struct {
  struct evhttp_request *req;
  char region[16];
} summary_q;

static void on_summary(const pg_result_set *rs, void *arg) {
  summary_q *q = arg;
  if (!rs->ok || PQntuples(rs->res[0]) != 1) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *o = json_object();
  json_object_set_new(o, "region", json_string(q->region));
  static const char *const keys[] = {"received", "dispatched", "closed", "warned", "breached"};
  for (int i = 0; i < 5; i++)
    json_object_set_new(o, keys[i], json_integer(strtoll(PQgetvalue(r, 0, i), NULL, 10)));
  http_reply_json(q->req, 200, o);
  free(q);
}

static void h_summary(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  app *a = arg;
  /* KPIs are for dashboards (viewer), staff (handler, centre) and admins —
   * not for intake agents. */
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0 &&
      strcmp(auth->role, "handler") != 0 && strcmp(auth->role, "centre") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read KPIs", NULL);
    return;
  }
  summary_q *q = calloc(1, sizeof *q);
  q->req = req;
  if (!effective_region(req, auth, http_query(req, "region"), q->region, sizeof q->region)) {
    free(q);
    return;
  }
  char prefix[16];
  region_prefix(q->region, prefix, sizeof prefix);
  pg_tx *tx = pg_tx_new();
  static const char *cols =
      "SELECT count(received_at), count(dispatched_at), count(closed_at), count(warned_at),"
      " count(breached_at) FROM analytics.orders";
  if (*prefix) {
    char sql[512], like[24];
    snprintf(sql, sizeof sql, "%s WHERE region LIKE $1", cols);
    snprintf(like, sizeof like, "%s%%", prefix);
    const char *v[1] = {like};
    pg_tx_add(tx, sql, 1, v, NULL, NULL);
  } else {
    pg_tx_add(tx, cols, 0, NULL, NULL, NULL);
  }
  pg_conn_submit(a->pg, tx, on_summary, q);
}

static void h_stream(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0) {
    http_reply_error(req, 403, "forbidden", "the stream is for admin and viewer tokens", NULL);
    return;
  }
  const char *region = http_query(req, "region");
  if (region && !valid_region(region)) {
    http_reply_error(req, 422, "invalid_value", "region must be a 6-digit region code", "region");
    return;
  }
  const char *last = http_header(req, "Last-Event-ID");
  if (!last) last = http_query(req, "last_event_id");
  sse_attach(a->sse, req, auth->scope, region, http_query(req, "types"), last);
}

static bool is_ready(void *arg) {
  app *a = arg;
  if (!pg_conn_ready(a->pg)) return false;
  for (int i = 0; i < NPRODUCERS; i++)
    if (!a->feeds[i].cons || !consumer_live(a->feeds[i].cons)) return false;
  return true;
}

static void metrics_cb(struct evbuffer *out, void *arg) {
  app *a = arg;
  evbuffer_add_printf(out, "# HELP kesu_analytics_events_applied_total Events applied\n"
                           "# TYPE kesu_analytics_events_applied_total counter\n");
  for (int i = 0; i < NPRODUCERS; i++)
    evbuffer_add_printf(out, "kesu_analytics_events_applied_total{producer=\"%s\"} %" PRIu64 "\n",
                        a->feeds[i].producer,
                        a->feeds[i].cons ? consumer_applied(a->feeds[i].cons) : 0);
  evbuffer_add_printf(out, "# HELP kesu_analytics_consumer_offset Last seq applied\n"
                           "# TYPE kesu_analytics_consumer_offset gauge\n");
  for (int i = 0; i < NPRODUCERS; i++)
    evbuffer_add_printf(out, "kesu_analytics_consumer_offset{producer=\"%s\"} %" PRIu64 "\n",
                        a->feeds[i].producer,
                        a->feeds[i].cons ? consumer_offset(a->feeds[i].cons) : 0);
  evbuffer_add_printf(out,
                      "# HELP kesu_analytics_sse_clients Connected SSE clients\n"
                      "# TYPE kesu_analytics_sse_clients gauge\n"
                      "kesu_analytics_sse_clients %zu\n"
                      "# HELP kesu_analytics_sse_ring Events kept for Last-Event-ID resume\n"
                      "# TYPE kesu_analytics_sse_ring gauge\n"
                      "kesu_analytics_sse_ring %zu\n"
                      "# HELP kesu_analytics_sse_dropped_total SSE clients dropped as too slow\n"
                      "# TYPE kesu_analytics_sse_dropped_total counter\n"
                      "kesu_analytics_sse_dropped_total %" PRIu64 "\n",
                      sse_client_count(a->sse), sse_ring_size(a->sse),
                      sse_dropped_clients(a->sse));
}

int main(void) {
  struct event_base *base = service_init("analytics");
  app a = {.base = base};
  a.pg = pg_conn_new(base, cfg_pg_conninfo("analytics"), "analytics");
  a.auth = auth_cache_new(base, a.pg);
  char host[128];
  int port;
  cfg_http_listen("ANALYTICS", PORT_ANALYTICS_HTTP, host, sizeof host, &port);
  a.http = http_server_new(base, host, port, a.auth);
  if (!a.http) return 1;
  a.sse = sse_hub_new(base, (size_t)cfg_long("KESU_ANALYTICS_SSE_RING", RING_EVENTS));
  http_route(a.http, EVHTTP_REQ_GET, "/v1/kpi/summary", 0, h_summary, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/stream", 0, h_stream, &a);
  kpi_routes(a.http, a.pg);
  web_routes(a.http);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  static const struct {
    const char *producer, *pub_env, *replay_env;
    int pub_port, replay_port;
  } src[NPRODUCERS] = {
      {"intake", "KESU_INTAKE_PUB", "KESU_INTAKE_REPLAY", PORT_INTAKE_PUB, PORT_INTAKE_REPLAY},
      {"router", "KESU_ROUTER_PUB", "KESU_ROUTER_REPLAY", PORT_ROUTER_PUB, PORT_ROUTER_REPLAY},
      {"sla", "KESU_SLA_PUB", "KESU_SLA_REPLAY", PORT_SLA_PUB, PORT_SLA_REPLAY},
  };
  for (int i = 0; i < NPRODUCERS; i++) {
    feed *f = &a.feeds[i];
    f->a = &a;
    f->producer = src[i].producer;
    /* One connection for all three: their upserts on the same rows never
     * run concurrently, so they cannot deadlock. */
    consumer_config cc = {.schema = "analytics",
                          .producer = src[i].producer,
                          .pub_endpoint = cfg_endpoint(src[i].pub_env, src[i].pub_port),
                          .replay_endpoint = cfg_endpoint(src[i].replay_env, src[i].replay_port),
                          .apply = on_apply,
                          .committed = on_committed,
                          .arg = f};
    f->cons = consumer_new(base, a.pg, &cc);
    if (!f->cons) return 1;
  }

  int rc = service_run(base);

  for (int i = 0; i < NPRODUCERS; i++) consumer_destroy(&a.feeds[i].cons);
  sse_hub_destroy(&a.sse);
  http_server_destroy(&a.http);
  auth_cache_destroy(&a.auth);
  pg_conn_destroy(&a.pg);
  event_base_free(base);
  return rc;
}
