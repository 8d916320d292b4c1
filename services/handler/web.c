/* web — the workbench's static files from services/handler/web/ (under
 * KESU_HOME). Only plain file names are served; no directory walks. */
#include "web.h"

#include <event2/buffer.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot)
    return "application/octet-stream";
  if (strcmp(dot, ".html") == 0)
    return "text/html; charset=utf-8";
  if (strcmp(dot, ".js") == 0)
    return "text/javascript; charset=utf-8";
  if (strcmp(dot, ".css") == 0)
    return "text/css; charset=utf-8";
  if (strcmp(dot, ".svg") == 0)
    return "image/svg+xml";
  if (strcmp(dot, ".png") == 0)
    return "image/png";
  return "application/octet-stream";
}

/* Letters, digits, '-', '_', '.', not starting with '.'. */
static bool safe_name(const char *s) {
  if (!*s || *s == '.')
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_' || *s == '.'))
      return false;
  return true;
}

static void send_file(struct evhttp_request *req, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    http_reply_error(req, 404, "not_found", "no such file", NULL);
    return;
  }
  struct evbuffer *out = evbuffer_new();
  evbuffer_add_file(out, fd, 0, st.st_size); /* takes fd */
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", content_type(path));
  evhttp_add_header(h, "Cache-Control", "no-cache");
  evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
  evhttp_send_reply(req, 200, "OK", out);
  evbuffer_free(out);
}

static const char *home(void) { return cfg_str("KESU_HOME", "."); }

static void h_index(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  (void)auth;
  (void)segs;
  (void)n;
  (void)arg;
  char path[1024];
  snprintf(path, sizeof path, "%s/services/handler/web/index.html", home());
  send_file(req, path);
}

static void h_asset(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  (void)auth;
  (void)n;
  (void)arg;
  if (!safe_name(segs[0])) {
    http_reply_error(req, 404, "not_found", "no such file", NULL);
    return;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/services/handler/web/%s", home(), segs[0]);
  send_file(req, path);
}

void web_routes(http_server *http) {
  http_route(http, EVHTTP_REQ_GET, "/", HTTP_PUBLIC, h_index, NULL);
  http_route(http, EVHTTP_REQ_GET, "/workbench", HTTP_PUBLIC, h_index, NULL);
  http_route(http, EVHTTP_REQ_GET, "/web/*", HTTP_PUBLIC, h_asset, NULL);
}
