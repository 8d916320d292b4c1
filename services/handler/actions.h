/* actions — staff actions on orders (ARCHITECTURE §4): recorded in
 * handler.pending_actions first, then sent to the router as Action{action_id};
 * resent every 2 s in creation order until the router's ActionResult arrives
 * (also after a restart), so an office keeps working while its link is down.
 * The router applies each action_id once and answers a resend with the stored
 * result. The HTTP request that made the action waits up to 3 s for that
 * result, else it is answered 202 pending.
 */
#ifndef KESU_HANDLER_ACTIONS_H
#define KESU_HANDLER_ACTIONS_H
#include <event2/http.h>

#include "envelope.h"
#include "link.h"
#include "pg.h"

struct event_base;
typedef struct pending_actions pending_actions;

pending_actions *pending_actions_new(struct event_base *base, pg_conn *pg, const char *handler_id);
void pending_actions_set_link(pending_actions *self, router_link *link);
void pending_actions_destroy(pending_actions **self);
/* Records and sends an action, then answers req: 200 {"action_id","ok","state"},
 * the router's refusal (409 conflict, 404, 422), 202 {"action_id","status":"pending"}
 * after 3 s without an answer, or 503 if it cannot be recorded. */
/* actor_unit: the unit the office holds the order for; params: a JSON object
 * text with the action's other fields (reason, to_unit, promised_by ms, ...). */
void pending_actions_submit(pending_actions *self, struct evhttp_request *req, const char *order_no,
                            const char *action, const char *answer, const char *actor,
                            const char *actor_unit, const char *params);
void pending_actions_on_result(pending_actions *self, const Kesu__V1__ActionResult *result);
#endif
