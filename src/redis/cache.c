/* cache.c — client-side caching (CLIENT TRACKING with RESP3 invalidations). Not built yet: no
 * invalidation is consumed here, every push goes on to pub/sub. */
#include "conn.h"

bool redis__cache_push(simul_redis_conn *c, simul_redis_reply *r)
{
    (void)c;
    (void)r;
    return false;
}
