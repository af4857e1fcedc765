/* web.h — the chess simul live in a browser (web.c): a page served by libsimul-http where the
 * boards update over WebSocket (or SSE) as the master walks among them, with the model against
 * the measurement and a chart of moves over time. Built when libsimul-http is (CHESS_WEB). */
#ifndef CHESS_WEB_H
#define CHESS_WEB_H

#include "chess.h"

typedef struct web_opts {
    const char *host, *port; /* where the page is served (default 127.0.0.1, a free port) */
    double wait_s;           /* wait up to this long for a page to connect before playing */
    double linger_s;         /* keep serving this long after the simul (SIGINT ends it) */
} web_opts;

/* Serves the page and prints its URL (the program's first line). Returns 0 or a negative
 * errno (then the simul runs without it). */
int web_start(const chess_config *cfg, const web_opts *o);
/* Suspends until a page follows the feed, for up to o->wait_s. */
void web_wait_page(void);
/* A mode begins with session s / has ended (its final state and measured time are kept). */
void web_attach(session *s);
void web_detach(session *s);
/* Suspends: lingers (o->linger_s; a cancellation ends it), ends the feeds and stops serving. */
void web_stop(void);

#endif
