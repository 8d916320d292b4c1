/* web — routes for the ops dashboard page and its static assets. */
#ifndef KESU_ANALYTICS_WEB_H
#define KESU_ANALYTICS_WEB_H
#include "http.h"
#include "pg.h"
void web_routes(http_server *http, pg_conn *pg);
#endif
