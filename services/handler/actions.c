/* actions — pending staff actions: record, send, resend, apply results. */
#include "actions.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "strmap.h"
#include "utf8.h"

enum { WAIT_MS = 3000, RESEND_MS = 2000, RESEND_MAX = 200 };

/* Recorded behind an unanswered action on the same order (head false), an
 * action waits there, unsent (resend_at NULL), until that one is answered:
 * one action per order in flight, so they reach the router in seq order. */
static const char SQL_RECORD[] =
    "INSERT INTO handler.pending_actions (action_id, order_no, action, answer, actor, created_at, "
    "sent_at, resend_at, actor_unit, params, handler_id) SELECT $1::uuid, $2, $3, $4, $5, "
    "handler.ms_ts($6::bigint), CASE WHEN h.head THEN handler.ms_ts($6::bigint) END, "
    "CASE WHEN h.head THEN now() END, $7, $8::jsonb, $9 FROM (SELECT NOT EXISTS (SELECT 1 FROM "
    "handler.pending_actions q WHERE q.order_no = $2 AND q.done_at IS NULL "
    "AND q.handler_id IN ($9, '')) AS head) h RETURNING resend_at IS NOT NULL";
/* resend_at is real time (now()): it only schedules resends. Every time staff
 * see (created_at, sent_at, done_at, closed_at) is the service clock's. */
static const char SQL_RECORDED[] =
    "SELECT resend_at IS NOT NULL FROM handler.pending_actions WHERE action_id = $1::uuid";
static const char SQL_DUE[] =
    "WITH due AS (SELECT d.action_id FROM handler.pending_actions d "
    "  WHERE d.done_at IS NULL AND d.handler_id IN ($1, '') "
    "  AND (d.resend_at IS NULL OR d.resend_at < now() - interval '2 seconds') "
    "  AND NOT EXISTS (SELECT 1 FROM handler.pending_actions e WHERE e.order_no = d.order_no "
    "    AND e.done_at IS NULL AND e.handler_id IN ($1, '') AND e.seq < d.seq) "
    "  ORDER BY d.seq LIMIT 200 FOR UPDATE OF d SKIP LOCKED) "
    "UPDATE handler.pending_actions p SET resend_at = now(), "
    "sent_at = coalesce(p.sent_at, handler.ms_ts($2::bigint)) FROM due "
    "WHERE p.action_id = due.action_id "
    "RETURNING p.action_id, p.order_no, p.action, coalesce(p.answer, ''), p.actor, "
    "handler.ts_ms(p.created_at), p.actor_unit, p.params::text, p.seq";
static const char SQL_RESULT[] =
    "UPDATE handler.pending_actions SET result_ok = $2::boolean, result_code = $3, "
    "result_message = $4, done_at = handler.ms_ts($5::bigint) "
    "WHERE action_id = $1::uuid AND done_at IS NULL";
/* A close the router accepted closes the local copy (at the time staff
 * closed it). Any answer carries the order's workflow state at the router,
 * which the local copy follows (SQL_WF_STATE: closed there, closed here). */
static const char SQL_CLOSE_LOCAL[] =
    "UPDATE handler.orders o SET state = 'closed', "
    "closed_at = CASE WHEN $2::boolean THEN p.created_at ELSE handler.ms_ts($4::bigint) END, "
    "answer = CASE WHEN $2::boolean THEN p.answer ELSE o.answer END "
    "FROM handler.pending_actions p WHERE p.action_id = $1::uuid AND o.order_no = p.order_no "
    "AND p.action = 'close' AND o.state = 'open' AND $2::boolean AND $3::text IS NOT NULL";


typedef struct waiter {
  pending_actions *owner;
  struct evhttp_request *req;
  char action_id[37];
  char *action;
  struct event *timer;
} waiter;

struct pending_actions {
  struct event_base *base;
  pg_conn *pg;
  router_link *link;
  char *handler_id;
  strmap *waiters; /* action_id -> waiter */
  struct event *ev_resend;
  bool resending;
  bool again; /* a result freed the next action of an order during a pass */
};

static metric *m_sent, *m_resent, *m_results;

static const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static int send_action(pending_actions *self, const char *action_id, const char *order_no,
                       const char *action, const char *answer, const char *actor, int64_t at,
                       const char *actor_unit, const char *params) {
  if (!self->link)
    return -1;
  Kesu__V1__Action a = KESU__V1__ACTION__INIT;
  json_t *p = json_loads(params ? params : "{}", 0, NULL);
  if (!p)
    p = json_object();
  a.actor_unit = (char *)(actor_unit ? actor_unit : "");
  a.reason = (char *)jstr(p, "reason");
  a.to_unit = (char *)jstr(p, "to_unit");
  a.conclusion = (char *)jstr(p, "conclusion");
  a.responsibility = (char *)jstr(p, "responsibility");
  a.regulator_opinion = (char *)jstr(p, "regulator_opinion");
  a.promised_by = json_integer_value(json_object_get(p, "promised_by"));
  a.satisfaction = (int32_t)json_integer_value(json_object_get(p, "satisfaction"));
  a.at_fault = json_is_true(json_object_get(p, "at_fault"));
  a.receipt_signed = json_is_true(json_object_get(p, "receipt_signed"));
  a.tier = (char *)jstr(p, "tier");
  a.customer_level = (char *)jstr(p, "customer_level");
  a.vip = json_is_true(json_object_get(p, "vip"));
  a.action_id = (char *)action_id;
  a.order_no = (char *)order_no;
  a.action = (char *)action;
  a.answer = (char *)answer;
  a.actor = (char *)actor;
  a.at = at;
  a.handler_id = self->handler_id;
  int rc = router_link_send_action(self->link, &a);
  json_decref(p);
  return rc;
}

static void waiter_free(waiter *w) {
  if (w->timer)
    event_free(w->timer);
  free(w->action);
  free(w);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  waiter *w = arg;
  strmap_remove(w->owner->waiters, w->action_id);
  /* Recorded and on its way: it will be resent until the router answers. */
  http_reply_json(w->req, 202,
                  json_pack("{s:s, s:s}", "action_id", w->action_id, "status", "pending"));
  waiter_free(w);
}

/* --- submit -------------------------------------------------------------- */

typedef struct {
  pending_actions *self;
  struct evhttp_request *req;
  char action_id[37];
  char *order_no, *action, *answer, *actor, *actor_unit, *params;
  int64_t at;
  bool async;   /* Prefer: respond-async: answer 202 once recorded */
  bool checked; /* the insert's outcome was looked up after a lost connection */
  int checks;   /* lookups lost too */
} submission;

static void submission_free(submission *s) {
  free(s->order_no);
  free(s->action);
  free(s->answer);
  free(s->actor);
  free(s->actor_unit);
  free(s->params);
  free(s);
}

static void on_recorded(const pg_result_set *rs, void *arg);

/* The connection went away under the transaction (no SQLSTATE, a connection
 * exception 08xxx, or the server ending the session 57P0x): committed or not
 * is unknown. */
static bool link_lost(const pg_result_set *rs) {
  const char *st = rs->sqlstate ? rs->sqlstate : "";
  return !rs->ok && (!*st || strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0);
}

/* The insert's connection was lost: it may have committed. If the row is
 * there the action goes on as recorded (it is resent like any other);
 * otherwise the client is told to try again. */
static void on_recorded_check(const pg_result_set *rs, void *arg) {
  submission *s = arg;
  if (rs->ok && PQntuples(rs->res[0]) == 1) {
    log_info("actions: %s on %s was recorded before the connection was lost; carrying on",
             s->action, s->order_no);
    on_recorded(rs, s);
    return;
  }
  if (link_lost(rs) && ++s->checks < 5) {
    /* lost again: ask again once the connection is back */
    const char *v[1] = {s->action_id};
    pg_tx *tx = pg_tx_new();
    pg_tx_add(tx, SQL_RECORDED, 1, v, NULL, NULL);
    pg_conn_submit(s->self->pg, tx, on_recorded_check, s);
    return;
  }
  log_warn("actions: %s on %s not recorded (%s)", s->action, s->order_no,
           rs->ok ? "no row" : rs->error);
  http_reply_error(s->req, 503, "unavailable", "the action could not be recorded; try again",
                   NULL);
  submission_free(s);
}

static void on_recorded(const pg_result_set *rs, void *arg) {
  submission *s = arg;
  pending_actions *self = s->self;
  if (link_lost(rs) && !s->checked) {
    /* lost connection: committed or not? ask once the link is back */
    s->checked = true;
    const char *v[1] = {s->action_id};
    pg_tx *tx = pg_tx_new();
    pg_tx_add(tx, SQL_RECORDED, 1, v, NULL, NULL);
    pg_conn_submit(self->pg, tx, on_recorded_check, s);
    return;
  }
  if (!rs->ok) {
    log_warn("actions: cannot record %s on %s: %s", s->action, s->order_no, rs->error);
    http_reply_error(s->req, 503, "unavailable", "the action could not be recorded; try again",
                     NULL);
    submission_free(s);
    return;
  }
  bool head = PQntuples(rs->res[0]) == 1 && PQgetvalue(rs->res[0], 0, 0)[0] == 't';
  if (head && send_action(self, s->action_id, s->order_no, s->action, s->answer, s->actor, s->at,
                          s->actor_unit, s->params) == 0)
    metric_add(m_sent, 1);
  bool down = !self->link || router_link_down(self->link);
  if (down || s->async) {
    /* The centre is out of reach (or the client asked not to wait): recorded,
     * it goes out once the link is back, in order; staff keep working. */
    http_reply_json(s->req, 202,
                    json_pack("{s:s, s:s, s:s, s:b}", "action_id", s->action_id, "status",
                              "pending", "link", down ? "down" : "up", "queued", !head));
    submission_free(s);
    return;
  }
  waiter *w = calloc(1, sizeof *w);
  w->owner = self;
  w->req = s->req;
  memcpy(w->action_id, s->action_id, sizeof w->action_id);
  w->action = strdup(s->action);
  w->timer = evtimer_new(self->base, on_wait_timeout, w);
  struct timeval tv = {WAIT_MS / 1000, (WAIT_MS % 1000) * 1000};
  evtimer_add(w->timer, &tv);
  strmap_put(self->waiters, w->action_id, w);
  submission_free(s);
}

void pending_actions_submit(pending_actions *self, struct evhttp_request *req, const char *order_no,
                            const char *action, const char *answer, const char *actor,
                            const char *actor_unit, const char *params) {
  submission *s = calloc(1, sizeof *s);
  s->self = self;
  s->req = req;
  uuid_v4(s->action_id);
  s->order_no = strdup(order_no);
  s->action = strdup(action);
  s->answer = strdup(answer ? answer : "");
  s->actor = strdup(actor ? actor : "");
  s->actor_unit = strdup(actor_unit ? actor_unit : "");
  s->params = strdup(params ? params : "{}");
  s->at = clock_now_ms();
  const char *prefer = evhttp_find_header(evhttp_request_get_input_headers(req), "Prefer");
  s->async = prefer && strstr(prefer, "respond-async") != NULL;
  char at[24];
  snprintf(at, sizeof at, "%" PRId64, s->at);
  const char *v[9] = {s->action_id, s->order_no, s->action, answer, s->actor, at, s->actor_unit,
                      s->params, self->handler_id};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_RECORD, 9, v, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_recorded, s);
}

/* --- results ------------------------------------------------------------- */

typedef struct {
  pending_actions *owner;
  waiter *w; /* NULL if nobody waits */
  bool ok;
  char *code, *message, *state, *holder, *field;
} result_ctx;

static int status_of(const char *code) {
  if (strcmp(code, "not_found") == 0)
    return 404;
  if (strcmp(code, "forbidden") == 0)
    return 403;
  if (strcmp(code, "unavailable") == 0)
    return 503;
  if (strcmp(code, "invalid_value") == 0 || strcmp(code, "missing_field") == 0)
    return 422;
  return 409; /* conflict: the action no longer fits the order */
}

static void kick(pending_actions *self);

static void on_result_stored(const pg_result_set *rs, void *arg) {
  result_ctx *rc = arg;
  if (rs->ok)
    kick(rc->owner); /* the next action on that order may go now */
  if (!rs->ok)
    log_warn("actions: result not stored (%s); the action is resent and answered again", rs->error);
  waiter *w = rc->w;
  if (w) {
    if (rc->ok) {
      http_reply_json(w->req, 200,
                      json_pack("{s:s, s:b, s:s, s:s, s:s}", "action_id", w->action_id, "ok", 1,
                                "state", *rc->state ? rc->state : "open", "wf_state", rc->state,
                                "holder_unit", rc->holder));
    } else {
      json_t *msg = json_string(rc->message);
      json_t *err = json_pack("{s:s, s:o, s:o}", "code", *rc->code ? rc->code : "conflict",
                              "message", msg ? msg : json_string(rc->code), "field",
                              *rc->field ? json_string(rc->field) : json_null());
      http_reply_json(w->req, status_of(rc->code),
                      json_pack("{s:o, s:s}", "error", err, "action_id", w->action_id));
    }
    waiter_free(w);
  }
  free(rc->code);
  free(rc->message);
  free(rc->state);
  free(rc->holder);
  free(rc->field);
  free(rc);
}

static bool is_uuid(const char *s) {
  if (!s || strlen(s) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex)
      return false;
  }
  return true;
}

void pending_actions_on_result(pending_actions *self, const Kesu__V1__ActionResult *r) {
  if (!is_uuid(r->action_id)) {
    log_warn("actions: result for a malformed action id ignored");
    return;
  }
  metric_add(m_results, 1);
  result_ctx *rc = calloc(1, sizeof *rc);
  rc->owner = self;
  rc->w = strmap_remove(self->waiters, r->action_id);
  if (rc->w)
    evtimer_del(rc->w->timer);
  rc->ok = r->ok;
  rc->code = strdup(r->code ? r->code : "");
  rc->message = strdup(r->message ? r->message : "");
  rc->field = strdup(r->field && utf8_valid((const unsigned char *)r->field, strlen(r->field))
                         ? r->field : "");
  rc->state = strdup(r->state && utf8_valid((const unsigned char *)r->state, strlen(r->state))
                         ? r->state : "");
  rc->holder = strdup(r->holder_unit && utf8_valid((const unsigned char *)r->holder_unit,
                                                    strlen(r->holder_unit))
                          ? r->holder_unit : "");
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *ok = r->ok ? "true" : "false";
  const char *v1[5] = {r->action_id, ok, rc->code, rc->message, now};
  const char *v2[4] = {r->action_id, ok, rc->code, now};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_RESULT, 5, v1, NULL, NULL);
  pg_tx_add(tx, SQL_CLOSE_LOCAL, 4, v2, NULL, NULL);
  if (r->order_no)
    store_add_wf_state(tx, r->order_no, rc->state);
  if (r->ok)
    store_add_history(tx, r->history, r->n_history);
  pg_conn_submit(self->pg, tx, on_result_stored, rc);
}

/* --- resend -------------------------------------------------------------- */

typedef struct {
  int64_t seq, created;
  int row;
} due_row;

static int by_seq(const void *a, const void *b) {
  const due_row *x = a, *y = b;
  if (x->seq != y->seq)
    return x->seq < y->seq ? -1 : 1;
  return x->row - y->row;
}

static void start_pass(pending_actions *self);

static void on_due(const pg_result_set *rs, void *arg) {
  pending_actions *self = arg;
  self->resending = false;
  if (!rs->ok) {
    log_warn("actions: cannot read pending actions: %s", rs->error);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  if (n == 0) {
    if (self->again) {
      self->again = false;
      start_pass(self);
    }
    return;
  }
  due_row *rows = calloc((size_t)n, sizeof *rows);
  for (int i = 0; i < n; i++) {
    rows[i].created = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    rows[i].seq = strtoll(PQgetvalue(r, i, 8), NULL, 10);
    rows[i].row = i;
  }
  qsort(rows, (size_t)n, sizeof *rows, by_seq); /* in the order staff acted */
  int sent = 0;
  for (int k = 0; k < n; k++) {
    int i = rows[k].row;
    if (send_action(self, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                    PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), rows[k].created,
                    PQgetvalue(r, i, 6), PQgetvalue(r, i, 7)) == 0)
      sent++;
  }
  free(rows);
  metric_add(m_resent, sent);
  log_info("actions: %d unanswered actions sent", sent);
  if (self->again) { /* a result freed another order's next action meanwhile */
    self->again = false;
    start_pass(self);
  }
}

static void start_pass(pending_actions *self) {
  if (!self->link || !pg_conn_ready(self->pg))
    return;
  if (self->resending) {
    self->again = true;
    return;
  }
  self->resending = true;
  pg_tx *tx = pg_tx_new();
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[2] = {self->handler_id, now};
  pg_tx_add(tx, SQL_DUE, 2, v, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_due, self);
}

static void kick(pending_actions *self) { start_pass(self); }

static void on_resend_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  start_pass(arg);
}

/* --- life ---------------------------------------------------------------- */

pending_actions *pending_actions_new(struct event_base *base, pg_conn *pg, const char *handler_id) {
  m_sent = metric_counter("handler_actions_sent_total", "staff actions sent to the router");
  m_resent = metric_counter("handler_actions_resent_total", "staff actions sent again");
  m_results = metric_counter("handler_action_results_total", "action results from the router");
  pending_actions *self = calloc(1, sizeof *self);
  self->base = base;
  self->pg = pg;
  self->handler_id = strdup(handler_id);
  self->waiters = strmap_new();
  self->ev_resend = event_new(base, -1, EV_PERSIST, on_resend_tick, self);
  struct timeval tv = {RESEND_MS / 1000, (RESEND_MS % 1000) * 1000};
  event_add(self->ev_resend, &tv);
  return self;
}

void pending_actions_set_link(pending_actions *self, router_link *link) { self->link = link; }

static bool free_waiter(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  waiter *w = value;
  http_reply_error(w->req, 503, "unavailable", "shutting down", NULL);
  waiter_free(w);
  return true;
}

void pending_actions_destroy(pending_actions **selfp) {
  pending_actions *self = *selfp;
  if (!self)
    return;
  event_free(self->ev_resend);
  strmap_each(self->waiters, free_waiter, NULL);
  strmap_destroy(&self->waiters);
  free(self->handler_id);
  free(self);
  *selfp = NULL;
}
