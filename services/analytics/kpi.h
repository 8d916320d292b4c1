/* kpi — GET /v1/kpi and /v1/kpi/{name} over the analytics.daily rollup. */
#ifndef KESU_ANALYTICS_KPI_H
#define KESU_ANALYTICS_KPI_H
#include "http.h"
#include "pg.h"

/* pg must outlive the server. */
void kpi_routes(http_server *http, pg_conn *pg);
#endif
