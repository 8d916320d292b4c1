/* auth — bearer tokens (stored hashed, SHA-256 hex) with a role and a unit scope.
 *
 * Tokens live in the shared auth schema (auth.tokens), readable by every
 * service role, written only by kesuctl. A cache keeps them in memory,
 * reloaded every few seconds and on NOTIFY auth_tokens, so checking a token
 * costs no round trip.
 * Scope is a region code: "000000" (or "") is the whole country; "310000"
 * covers 31xxxx; "310100" covers 3101xx.
 */
#ifndef KESU_AUTH_H
#define KESU_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include "pg.h"

struct event_base;
typedef struct auth_cache auth_cache;

typedef struct {
  const char *name;  /* token's name (the staff member or system) */
  const char *role;  /* admin, agent, handler, viewer, ... */
  const char *scope; /* region code */
} auth_ctx;

auth_cache *auth_cache_new(struct event_base *base, pg_conn *pg);
void auth_cache_destroy(auth_cache **self);
bool auth_cache_loaded(const auth_cache *self);
/* token: the raw bearer token. NULL if unknown/revoked. Pointer valid until next reload:
 * copy what you keep. */
const auth_ctx *auth_cache_check(auth_cache *self, const char *token);
/* Reload the tokens and call cb(arg) once a reload that began after this call has finished
 * (loaded or failed). Used before refusing an unknown token that may be seconds old. Returns -1
 * (and never calls cb) when too many callers already wait. */
typedef void (*auth_reload_cb)(void *arg);
int auth_cache_refresh_then(auth_cache *self, auth_reload_cb cb, void *arg);

/* sha256 hex (65 bytes). */
void auth_hash_token(const char *token, char out[65]);
/* New random token "kesu_<40 hex>"; out needs 46 bytes. */
void auth_new_token(char out[46]);
bool auth_scope_covers(const char *scope, const char *region);
#endif
