/* wrong_way.c — a file the core could contain by mistake: it calls up into the stream layer.
 * tests/layers/wrong_way.cmake links it with the core's layer set and expects the link to fail. */
#include "simul.h"

int simul__layers_wrong_way(simul_stream *s);

int simul__layers_wrong_way(simul_stream *s)
{
    return simul_stream_write(s, "x", 1);
}
