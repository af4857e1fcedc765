/* model.c — the arithmetic of model.h, kept apart from the sockets so it can be unit-tested. */
#include "model.h"

#include <stdio.h>

static double visit_min(const chess_params *p)
{
    return (p->boards > 1 ? p->switch_min : 0.0) + p->master_min;
}

double chess_model_game_min(const chess_params *p)
{
    return (double)p->moves * (p->master_min + p->opponent_min);
}

double chess_model_sync_min(const chess_params *p)
{
    return (double)p->boards * chess_model_game_min(p) + (double)(p->boards - 1) * p->switch_min;
}

bool chess_model_master_bound(const chess_params *p)
{
    return (double)(p->boards - 1) * visit_min(p) >= p->opponent_min;
}

double chess_model_async_min(const chess_params *p)
{
    double v = visit_min(p);
    double round = (double)p->boards * v;
    if (p->opponent_min + v > round)
        round = p->opponent_min + v;
    return p->master_min + (double)(p->boards - 1) * v + (double)(p->moves - 1) * round +
           p->opponent_min;
}

const char *chess_format_seed(double minutes, char *buf, unsigned long cap)
{
    if (minutes >= 2 * 24 * 60)
        snprintf(buf, cap, "%.2f days", minutes / (24 * 60));
    else if (minutes >= 120)
        snprintf(buf, cap, "%.1f h", minutes / 60);
    else if (minutes >= 2)
        snprintf(buf, cap, "%.1f min", minutes);
    else
        snprintf(buf, cap, "%.1f s", minutes * 60);
    return buf;
}
