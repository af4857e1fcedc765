/* test_net_helpers.h — stream helpers shared by the stream and server tests: an echo handler
 * for servers and a client connection to a loopback port (on a wrapping bottom in wrap mode:
 * test_stream_helpers.h). */
#ifndef SIMUL_TEST_NET_HELPERS_H
#define SIMUL_TEST_NET_HELPERS_H

#include <stdio.h>

#include "test_stream_helpers.h"

/* Echoes until EOF or an error; a cancel (server close) is a clean end. */
static inline int echo_handler(simul_stream *s, void *arg)
{
    (void)arg;
    char buf[8192];
    for (;;) {
        long n = simul_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return n < 0 && n != -ECANCELED ? (int)n : 0;
        int rc = simul_stream_write(s, buf, (size_t)n);
        if (rc == 0)
            rc = simul_stream_drain(s);
        if (rc < 0)
            return 0;
    }
}

/* A stream connected to 127.0.0.1:port; fails the test if it cannot connect. */
static inline simul_stream *connect_port(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    simul_stream *s = NULL;
    int rc = simul_open_connection("127.0.0.1", p, &s);
    if (rc < 0)
        fail_msg("open_connection: %s", simul_errname(rc));
    return test_wrap(s);
}

#endif /* SIMUL_TEST_NET_HELPERS_H */
