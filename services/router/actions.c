/* actions — staff actions sent by handlers (ARCHITECTURE §4), applied once per
 * action_id by router.apply_action: a resent action gets the stored result,
 * an action that no longer fits the order is refused and changes nothing
 * a close emits WorkOrderClosed. The result goes back to the handler
 * that sent it; if it is lost, the handler resends and gets the same answer.
 *
 * Two round trips: first the stored result (if any) and the order, so the
 * WorkOrderClosed event can be packed with the order's unit and acceptance
 * time; then the function, in one transaction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "utf8.h"

static metric *m_actions, *m_closed;

static const char SQL_LOOKUP_ACTION[] =
    "SELECT ok, code, message FROM router.actions WHERE action_id = $1 AND ok IS NOT NULL";
static const char SQL_LOOKUP_ORDER[] =
    "SELECT unit_id, region, state, coalesce(router.ts_ms(accepted_at), 0) "
    "FROM router.work_orders WHERE order_no = $1";
static const char SQL_APPLY[] =
    "SELECT ok, code, message, emitted FROM router.apply_action($1, $2, $3, $4, $5, "
    "$6::bigint, $7, $8::bigint, $9::uuid, $10::bigint, $11::bytea)";

typedef struct {
  router *r;
  char *handler_id;
  char *action_id, *order_no, *action, *actor, *answer;
  int64_t at;
} action_req;

static void req_free(action_req *q) {
  free(q->handler_id);
  free(q->action_id);
  free(q->order_no);
  free(q->action);
  free(q->actor);
  free(q->answer);
  free(q);
}

static void reply(action_req *q, bool ok, const char *code, const char *message) {
  Kesu__V1__ActionResult res = KESU__V1__ACTION_RESULT__INIT;
  res.action_id = q->action_id;
  res.order_no = q->order_no;
  res.ok = ok;
  res.code = (char *)code;
  res.message = (char *)message;
  dispatcher_reply(q->r->dispatcher, q->handler_id, &res);
}

static void on_applied(const pg_result_set *rs, void *arg) {
  action_req *q = arg;
  if (!rs->ok) {
    /* Nothing was recorded: the handler's resend is applied afresh. */
    log_warn("actions: %s on %s not applied: %s", q->action_id, q->order_no, rs->error);
    req_free(q);
    return;
  }
  PGresult *res = rs->res[0];
  bool ok = PQgetvalue(res, 0, 0)[0] == 't';
  bool emitted = PQgetvalue(res, 0, 3)[0] == 't';
  metric_add(m_actions, 1);
  if (emitted)
    metric_add(m_closed, 1);
  log_info("actions: %s %s on %s by %s: %s%s%s", q->action_id, q->action, q->order_no, q->actor,
           ok ? "ok" : "refused ", ok ? "" : PQgetvalue(res, 0, 1), emitted ? " (closed)" : "");
  reply(q, ok, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
  req_free(q);
}

static unsigned char *pack_closed(action_req *q, const char *unit_id, const char *region,
                                  int64_t accepted_at, int64_t closed_at, int64_t now,
                                  char event_id[37], size_t *len) {
  Kesu__V1__WorkOrderClosed p = KESU__V1__WORK_ORDER_CLOSED__INIT;
  p.order_no = q->order_no;
  p.unit_id = (char *)unit_id;
  p.closed_at = closed_at;
  p.answer = q->answer;
  p.actor = q->actor;
  p.accepted_at = accepted_at;
  uuid_v4(event_id);
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  env.producer = "router";
  env.event_id = event_id;
  env.type = EV_WORK_ORDER_CLOSED;
  env.occurred_at = now;
  env.order_no = q->order_no;
  env.region = (char *)region;
  env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED;
  env.work_order_closed = &p;
  return envelope_pack(&env, len);
}

static void on_looked_up(const pg_result_set *rs, void *arg) {
  action_req *q = arg;
  if (!rs->ok) {
    log_warn("actions: cannot look up %s: %s", q->action_id, rs->error);
    req_free(q); /* the handler resends */
    return;
  }
  PGresult *stored = rs->res[0], *order = rs->res[1];
  if (PQntuples(stored) == 1) {
    reply(q, PQgetvalue(stored, 0, 0)[0] == 't', PQgetvalue(stored, 0, 1),
          PQgetvalue(stored, 0, 2));
    req_free(q);
    return;
  }
  int64_t now = clock_now_ms();
  /* The close takes effect when the staff member closed it (the handler may
   * have been cut off from the centre), never in the future. */
  int64_t closed_at = q->at > 0 && q->at <= now ? q->at : now;
  unsigned char *env = NULL;
  size_t env_len = 0;
  char event_id[37] = "";
  if (strcmp(q->action, "close") == 0 && PQntuples(order) == 1 &&
      strcmp(PQgetvalue(order, 0, 2), "closed") != 0) {
    env =
        pack_closed(q, PQgetvalue(order, 0, 0), PQgetvalue(order, 0, 1),
                    strtoll(PQgetvalue(order, 0, 3), NULL, 10), closed_at, now, event_id, &env_len);
  }
  char at[24], closed[24], now_s[24];
  snprintf(at, sizeof at, "%" PRId64, q->at);
  snprintf(closed, sizeof closed, "%" PRId64, closed_at);
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  const char *v[11] = {q->action_id,  q->order_no,      q->action,
                       q->actor,      q->answer,        at,
                       q->handler_id, closed,           env ? event_id : NULL,
                       now_s,         (const char *)env};
  int lens[11] = {0};
  int fmts[11] = {0};
  lens[10] = (int)env_len;
  fmts[10] = 1;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_APPLY, 11, v, lens, fmts);
  free(env);
  pg_conn_submit(q->r->pg, tx, on_applied, q);
}

static bool text_ok(const char *s) { return s && utf8_valid((const unsigned char *)s, strlen(s)); }

void actions_handle(router *r, const char *handler_id, const Kesu__V1__Action *a) {
  if (!m_actions) {
    m_actions = metric_counter("router_actions_total", "actions applied (ok or refused)");
    m_closed = metric_counter("router_orders_closed_total", "orders closed (WorkOrderClosed)");
  }
  action_req *q = calloc(1, sizeof *q);
  q->r = r;
  q->handler_id = strdup(handler_id);
  q->action_id = strdup(a->action_id ? a->action_id : "");
  q->order_no = strdup(a->order_no ? a->order_no : "");
  q->action = strdup(a->action ? a->action : "");
  q->actor = strdup(a->actor ? a->actor : "");
  q->answer = strdup(a->answer ? a->answer : "");
  q->at = a->at;
  if (!*q->action_id || strlen(q->action_id) > 64 || !*q->order_no || !text_ok(q->action_id) ||
      !text_ok(q->order_no) || !text_ok(q->action) || !text_ok(q->actor) || !text_ok(q->answer)) {
    log_warn("actions: malformed action from %s", handler_id);
    reply(q, false, "invalid_value", "malformed action");
    req_free(q);
    return;
  }
  pg_tx *tx = pg_tx_new();
  const char *v1[1] = {q->action_id};
  const char *v2[1] = {q->order_no};
  pg_tx_add(tx, SQL_LOOKUP_ACTION, 1, v1, NULL, NULL);
  pg_tx_add(tx, SQL_LOOKUP_ORDER, 1, v2, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_looked_up, q);
}
