/* reports — reports: distributions, hot issues, the assessment
 * ledger and supervision records per unit and month; JSON or format=csv. */
#ifndef KESU_ANALYTICS_REPORTS_H
#define KESU_ANALYTICS_REPORTS_H
#include "http.h"
#include "pg.h"

/* pg must outlive the server. */
void reports_routes(http_server *http, pg_conn *pg);
#endif
