/* web — routes for the staff workbench page (issue 3) and its static assets:
 * GET / and /workbench (the page), GET /web/{file} (its script and styles).
 * Public: everything the page shows comes from the token-checked API. */
#ifndef KESU_HANDLER_WEB_H
#define KESU_HANDLER_WEB_H
#include "http.h"
void web_routes(http_server *http);
#endif
