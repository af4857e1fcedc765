/* test_amqp_frame.c — the pure parts of libsimul-amqp: the frame reader (hand-made frames: whole,
 * split at every byte, over frame_max, malformed), the method check over the codec, and amqp://
 * URL parsing. No loop, no socket. */
#include "test_main_helpers.h"

#include <simul/amqp.h>

/* Builds a frame: type, channel, payload. Returns its length. */
static size_t mk(uint8_t *buf, uint8_t type, uint16_t ch, const void *payload, uint32_t n)
{
    buf[0] = type;
    buf[1] = (uint8_t)(ch >> 8);
    buf[2] = (uint8_t)ch;
    buf[3] = (uint8_t)(n >> 24);
    buf[4] = (uint8_t)(n >> 16);
    buf[5] = (uint8_t)(n >> 8);
    buf[6] = (uint8_t)n;
    if (n)
        memcpy(buf + 7, payload, n);
    buf[7 + n] = 0xCE;
    return n + 8;
}

/* connection.tune (10, 30): channel_max 2047, frame_max 131072, heartbeat 60. */
static const uint8_t tune[] = {0, 10, 0, 30, 0x07, 0xff, 0, 2, 0, 0, 0, 60};

static void frame_whole_and_split(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = mk(buf, SIMUL_AMQP_FRAME_METHOD, 0, tune, sizeof tune);
    simul_amqp_frame f;
    assert_int_equal(simul_amqp_frame_parse(buf, n, 131072, &f), (ssize_t)n);
    assert_int_equal(f.type, SIMUL_AMQP_FRAME_METHOD);
    assert_int_equal(f.channel, 0);
    assert_int_equal(f.size, sizeof tune);
    assert_memory_equal(f.payload, tune, sizeof tune);
    /* Every prefix is "need more", consuming nothing. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(simul_amqp_frame_parse(buf, k, 131072, &f), 0);
    uint32_t id = 0;
    assert_int_equal(simul_amqp_method_check(&f, &id), 0);
    assert_int_equal(id, (10u << 16) | 30u);
}

static void frame_two_in_a_row_and_channels(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t a = mk(buf, SIMUL_AMQP_FRAME_HEARTBEAT, 0, NULL, 0);
    size_t b = mk(buf + a, SIMUL_AMQP_FRAME_BODY, 65535, "hello", 5);
    simul_amqp_frame f;
    assert_int_equal(simul_amqp_frame_parse(buf, a + b, 0, &f), (ssize_t)a);
    assert_int_equal(f.type, SIMUL_AMQP_FRAME_HEARTBEAT);
    assert_int_equal(f.size, 0);
    assert_int_equal(simul_amqp_frame_parse(buf + a, b, 0, &f), (ssize_t)b);
    assert_int_equal(f.channel, 65535);
    assert_memory_equal(f.payload, "hello", 5);
    /* An empty body frame is legal. */
    size_t e = mk(buf, SIMUL_AMQP_FRAME_BODY, 1, NULL, 0);
    assert_int_equal(simul_amqp_frame_parse(buf, e, 4096, &f), (ssize_t)e);
}

static void frame_over_frame_max_known_from_header(void **state)
{
    (void)state;
    /* Only the 7-byte header: a 200000-byte frame against frame_max 131072 is refused at once. */
    uint8_t hdr[7] = {3, 0, 1, 0, 0x03, 0x0d, 0x40};
    simul_amqp_frame f;
    assert_int_equal(simul_amqp_frame_parse(hdr, 7, 131072, &f), -EMSGSIZE);
    assert_string_equal(simul_amqp_frame_strerror(-EMSGSIZE, hdr, 7),
                        "frame larger than the negotiated frame_max");
    /* The boundary: payload + 8 == frame_max is fine, one more byte is not. */
    static uint8_t big[4096 + 8], src[4096];
    size_t n = mk(big, SIMUL_AMQP_FRAME_BODY, 1, src, 4096 - 8);
    assert_int_equal(simul_amqp_frame_parse(big, n, 4096, &f), (ssize_t)n);
    n = mk(big, SIMUL_AMQP_FRAME_BODY, 1, src, 4096 - 7);
    assert_int_equal(simul_amqp_frame_parse(big, n, 4096, &f), -EMSGSIZE);
    /* A hostile size near 2^32 does not wrap. */
    uint8_t huge[7] = {3, 0, 1, 0xff, 0xff, 0xff, 0xfc};
    assert_int_equal(simul_amqp_frame_parse(huge, 7, 0xffffffffu, &f), -EMSGSIZE);
    assert_int_equal(simul_amqp_frame_parse(huge, 7, 0, &f), 0); /* unbounded: waits */
}

static void frame_malformed(void **state)
{
    (void)state;
    uint8_t buf[64];
    simul_amqp_frame f;
    size_t n = mk(buf, 4, 0, "x", 1); /* unknown type */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    assert_string_equal(simul_amqp_frame_strerror(-EPROTO, buf, n), "unknown frame type");
    n = mk(buf, SIMUL_AMQP_FRAME_BODY, 1, "abc", 3);
    buf[n - 1] = 0xCD; /* bad end byte */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    assert_string_equal(simul_amqp_frame_strerror(-EPROTO, buf, n), "frame end byte is not 0xCE");
    n = mk(buf, SIMUL_AMQP_FRAME_HEARTBEAT, 3, NULL, 0); /* heartbeat off channel 0 */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    n = mk(buf, SIMUL_AMQP_FRAME_HEARTBEAT, 0, "a", 1); /* heartbeat with payload */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    n = mk(buf, SIMUL_AMQP_FRAME_METHOD, 1, "abc", 3); /* method shorter than its ids */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    n = mk(buf, SIMUL_AMQP_FRAME_HEADER, 1, "0123456789abc", 13); /* header < 14 */
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), -EPROTO);
    /* The bad type is seen from the first 7 bytes too. */
    assert_int_equal(simul_amqp_frame_parse((const uint8_t[]){9, 0, 0, 0, 0, 0, 0}, 7, 0, &f),
                     -EPROTO);
}

static void method_check_rejects_truncated_arguments(void **state)
{
    (void)state;
    uint8_t buf[64];
    simul_amqp_frame f;
    /* tune cut short: the codec must refuse, not read past the payload. */
    size_t n = mk(buf, SIMUL_AMQP_FRAME_METHOD, 0, tune, 9);
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), (ssize_t)n);
    assert_int_equal(simul_amqp_method_check(&f, NULL), -EPROTO);
    /* An unknown class/method pair. */
    const uint8_t unk[] = {0, 99, 0, 99};
    n = mk(buf, SIMUL_AMQP_FRAME_METHOD, 0, unk, 4);
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), (ssize_t)n);
    assert_int_equal(simul_amqp_method_check(&f, NULL), -EOPNOTSUPP);
    /* basic.deliver with a short string that claims more bytes than there are. */
    const uint8_t del[] = {0, 60, 0, 60, 200, 'a', 'b'};
    n = mk(buf, SIMUL_AMQP_FRAME_METHOD, 1, del, sizeof del);
    assert_int_equal(simul_amqp_frame_parse(buf, n, 0, &f), (ssize_t)n);
    assert_int_equal(simul_amqp_method_check(&f, NULL), -EPROTO);
}

static void url_full_and_defaults(void **state)
{
    (void)state;
    simul_amqp_url u;
    assert_int_equal(simul_amqp_url_parse("amqp://user:p%40ss@example.com:5673/my%2fvhost"
                                          "?heartbeat=5&frame_max=8192&channel_max=10"
                                          "&connection_timeout=2500",
                                          &u),
                     0);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "example.com");
    assert_string_equal(u.port, "5673");
    assert_string_equal(u.vhost, "my/vhost");
    assert_false(u.tls);
    assert_true(u.heartbeat == 5);
    assert_int_equal(u.frame_max, 8192);
    assert_int_equal(u.channel_max, 10);
    assert_true(u.connect_timeout == 2.5);
    simul_amqp_url_free(&u);

    assert_int_equal(simul_amqp_url_parse("amqp://", &u), 0);
    assert_string_equal(u.user, "guest");
    assert_string_equal(u.password, "guest");
    assert_string_equal(u.host, "localhost");
    assert_string_equal(u.port, "5672");
    assert_string_equal(u.vhost, "/"); /* no path: the default vhost */
    assert_true(u.heartbeat < 0);
    simul_amqp_url_free(&u);

    assert_int_equal(simul_amqp_url_parse("amqps://h/", &u), 0);
    assert_true(u.tls);
    assert_string_equal(u.port, "5671");
    assert_string_equal(u.vhost, "/"); /* an empty path: the default vhost, as pika reads it */
    simul_amqp_url_free(&u);

    assert_int_equal(simul_amqp_url_parse("amqp://[::1]:15672/%2f", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "15672");
    assert_string_equal(u.vhost, "/");
    simul_amqp_url_free(&u);

    assert_int_equal(simul_amqp_url_parse("AMQP://onlyuser@h", &u), 0);
    assert_string_equal(u.user, "onlyuser");
    assert_string_equal(u.password, "guest");
    simul_amqp_url_free(&u);
}

static void url_rejects_bad_input(void **state)
{
    (void)state;
    simul_amqp_url u;
    const char *bad[] = {
        "http://h/",
        "amqp:/h",
        "amqp://h:0/",
        "amqp://h:65536/",
        "amqp://h:12x/",
        "amqp://h/a/b",
        "amqp://u%zz@h/",
        "amqp://u%2@h/",
        "amqp://u%00@h/",
        "amqp://h/?nope=1",
        "amqp://h/?heartbeat",
        "amqp://h/?frame_max=100",
        "amqp://h/?channel_max=70000",
        "amqp://[::1/",
        "amqp://[::1]x/",
        "amqp://h/?heartbeat=-1",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        memset(&u, 0x5a, sizeof u);
        int rc = simul_amqp_url_parse(bad[i], &u);
        if (rc != -EINVAL)
            fail_msg("%s: %d", bad[i], rc);
        assert_null(u.host); /* nothing left allocated */
    }
    assert_int_equal(simul_amqp_url_parse(NULL, &u), -EINVAL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_whole_and_split),
        cmocka_unit_test(frame_two_in_a_row_and_channels),
        cmocka_unit_test(frame_over_frame_max_known_from_header),
        cmocka_unit_test(frame_malformed),
        cmocka_unit_test(method_check_rejects_truncated_arguments),
        cmocka_unit_test(url_full_and_defaults),
        cmocka_unit_test(url_rejects_bad_input),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_frame");
}
