/* sse — the live event stream for browsers (Server-Sent Events).
 *
 * Every committed event is framed once ("id: <producer>-<seq>\nevent: <type>
 * \ndata: <json>\n\n"), kept in a ring of the last N events and written to
 * every connected client whose filters match (types, region prefix, and the
 * token's scope). A client reconnecting with Last-Event-ID gets the events
 * after that id that are still in the ring. A comment ":\n\n" every 15 s
 * keeps proxies from closing idle streams and detects gone clients. */
#ifndef KESU_ANALYTICS_SSE_H
#define KESU_ANALYTICS_SSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;
typedef struct sse_hub sse_hub;

sse_hub *sse_hub_new(struct event_base *base, size_t ring_cap);
/* Ends every stream and frees. Call before the HTTP server is freed. */
void sse_hub_destroy(sse_hub **self);
/* region may be "" (then only unfiltered, country-wide clients see it). */
void sse_publish(sse_hub *h, const char *producer, uint64_t seq, const char *type,
                 const char *region, const char *json_data);
/* Takes req over as a streaming response. scope: the token's region scope;
 * region: ?region filter or NULL; types: ?types comma list or NULL;
 * last_id: Last-Event-ID or NULL. */
void sse_attach(sse_hub *h, struct evhttp_request *req, const char *scope, const char *region,
                const char *types, const char *last_id);
/* Whether the ring still holds the event with this id ("<producer>-<seq>"). */
bool sse_ring_has(const sse_hub *h, const char *last_id);
/* One event of a backlog read from analytics.stream_log. */
typedef struct {
  const char *producer;
  uint64_t seq;
  const char *type, *region, *data;
} sse_item;
/* Like sse_attach, resuming from a backlog (the events after the client's
 * Last-Event-ID, in commit order), then the ring's events newer than the
 * backlog per producer: no gap, no duplicate. */
void sse_attach_backlog(sse_hub *h, struct evhttp_request *req, const char *scope,
                        const char *region, const char *types, const sse_item *items, size_t n);
size_t sse_client_count(const sse_hub *h);
size_t sse_ring_size(const sse_hub *h);
uint64_t sse_dropped_clients(const sse_hub *h);
#endif
