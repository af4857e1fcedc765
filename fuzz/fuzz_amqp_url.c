/* fuzz_amqp_url.c — libFuzzer target for amqp:// URL parsing: any bytes give 0 or -EINVAL, never a
 * crash; on success every field is set, the port is a number in 1..65535, and on failure nothing is
 * left allocated. Replayed by ctest fuzz.amqp_url over fuzz/corpus/amqp_url. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <simul/amqp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    simul_amqp_url u;
    int rc = simul_amqp_url_parse(s, &u);
    if (rc == 0) {
        if (!u.user || !u.password || !u.host || !u.port || !u.vhost)
            abort();
        long p = strtol(u.port, NULL, 10);
        if (p < 1 || p > 65535)
            abort();
        simul_amqp_url_free(&u);
    } else if (rc != -EINVAL) {
        abort();
    } else if (u.host || u.user || u.vhost) {
        abort();
    }
    free(s);
    return 0;
}
