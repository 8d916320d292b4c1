/* zloop — ZeroMQ sockets on the libevent loop.
 *
 * ZMQ_FD is edge-triggered: it signals that ZMQ_EVENTS may have changed, not
 * that a message waits. So a watch drains the socket until EAGAIN on every
 * wake-up, and must be kicked after each send on the same socket (sending can
 * consume the edge that announced incoming messages).
 */
#ifndef KESU_ZLOOP_H
#define KESU_ZLOOP_H
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct zwatch zwatch;

/* A received multipart message; frames are owned by the msg. */
typedef struct {
  int nframes;
  size_t *len;
  unsigned char **data;
} zmsg;

/* Called once per received multipart message. */
typedef void (*zwatch_cb)(void *sock, zmsg *msg, void *arg);

void *zloop_ctx(void); /* the process's zmq context */
void zloop_term(void);
zwatch *zwatch_new(struct event_base *base, void *sock, zwatch_cb cb, void *arg);
void zwatch_destroy(zwatch **self);
void zwatch_kick(zwatch *self); /* call after sending on the watched socket */

/* Send frames (n of them); 0 or -1 (errno, e.g. EAGAIN/EHOSTUNREACH). Non-blocking. */
int zsend(void *sock, int n, const void *const *data, const size_t *len);
int zsend_str2(void *sock, const char *a, const void *b, size_t blen);
/* A socket with kesu's defaults (linger 0, high-water marks 200k); set options
 * such as ZMQ_ROUTING_ID before zmq_connect/zmq_bind. */
void *zsock_new(int type);
/* Bind or connect (endpoint like tcp://127.0.0.1:7100); returns socket or NULL. */
void *zsock_bind(int type, const char *endpoint);
void *zsock_connect(int type, const char *endpoint);
void zsock_close(void **sock);
#endif
