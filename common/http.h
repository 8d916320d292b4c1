/* http — JSON APIs on evhttp (ARCHITECTURE §8).
 *
 * Every server gets /healthz, /readyz, /metrics for free, and — only when the
 * clock is controllable — POST /v1/admin/clock {"advance_ms":n} | {"set":"RFC3339"}
 * (admin role). Every other route needs a bearer token unless registered with
 * HTTP_PUBLIC. Bodies are size-limited (KESU_HTTP_MAX_BODY, default 64 KiB),
 * must be application/json, valid UTF-8 and valid JSON before a handler runs.
 * Errors are {"error":{"code","message","field"}}.
 */
#ifndef KESU_HTTP_H
#define KESU_HTTP_H
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "auth.h"

struct event_base;
typedef struct http_server http_server;

enum { HTTP_PUBLIC = 1 };

/* segs: the path's "*" segments, URL-decoded (valid until return). */
typedef void (*http_handler)(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                             int nsegs, void *arg);

/* auth may be NULL only if every route is HTTP_PUBLIC. Returns NULL if bind fails. */
http_server *http_server_new(struct event_base *base, const char *host, int port, auth_cache *auth);
void http_server_destroy(http_server **self);
/* method: EVHTTP_REQ_GET etc. pattern: "/v1/complaints/ *" — each "*" matches
 * exactly one non-empty segment. First match wins. */
void http_route(http_server *s, int method, const char *pattern, int flags, http_handler h, void *arg);
void http_set_ready(http_server *s, bool (*ready)(void *arg), void *arg);
/* Appends Prometheus text for the service's own metrics. */
void http_set_metrics(http_server *s, void (*metrics)(struct evbuffer *out, void *arg), void *arg);

/* Steals body. */
void http_reply_json(struct evhttp_request *req, int status, json_t *body);
void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *message,
                      const char *field);
/* Checks content type, size, UTF-8, JSON object. On failure replies with the
 * right 4xx and returns NULL. Caller owns the result (json_decref). */
json_t *http_read_json(struct evhttp_request *req);
/* Query-string parameter (decoded) or NULL; valid until the request ends.
 * Free nothing. */
const char *http_query(struct evhttp_request *req, const char *name);
const char *http_header(struct evhttp_request *req, const char *name);
#endif
