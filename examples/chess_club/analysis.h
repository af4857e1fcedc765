/* analysis.h — the chess club's CPU-bound endpoint (analysis.c): GET /perft?fen=&depth=. */
#ifndef CLUB_ANALYSIS_H
#define CLUB_ANALYSIS_H

#include <simul/http.h>

/* GET /perft?fen=<FEN>&depth=<1..5>: {"fen": ..., "depth": n, "nodes": N}, the leaf nodes of
 * the legal move tree `depth` plies deep (fen defaults to the initial position). 400 for a bad
 * FEN or depth, 422 over the budget of positions expanded, 503 when the queue is full or the
 * result does not come within the deadline. See analysis.c for where the work runs. */
int club_perft(simul_http_request *req, simul_http_response *res, void *arg);

#endif
