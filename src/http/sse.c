/* sse.c — Server-Sent Events on a started response: one event written at a time, or a shared
 * event formatted once and sent to any number of streams. The idea: an event's bytes never live
 * in the request's arena (a stream lasts hours, its arena is only reset when it ends), so a long
 * stream holds nothing per event it sent; a fan-out holds one reference-counted copy per event,
 * not one per subscriber. Built on the public response API only (simul_http_sse_start is the
 * server's: it marks the response as a stream); of internal.h it uses only http_has_crlf, the
 * check the server's Set-Cookie makes too. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/http.h>

#include "internal.h"

struct simul_http_sse_event {
    atomic_ulong refs; /* atomic: an event may be shared by servers on several threads */
    size_t len;       /* wire bytes, at wire */
    const char *name; /* NUL-terminated copies after the wire bytes; "" when absent */
    const char *id;
    char wire[];
};

/* The most bytes formatting can take: each line of data costs "data: " and "\n", plus the
 * fields and the blank line that ends the event. Every CR and LF is counted as a line's end (a
 * CRLF, one line, is counted twice: a bound, not the size). */
static size_t sse_cap(const char *event, const char *id, const char *data)
{
    size_t dlen = data ? strlen(data) : 0, lines = 1;
    for (const char *p = data; p && (p = strpbrk(p, "\r\n")); p++) {
        lines++;
    }
    return dlen + lines * 7 + (event ? strlen(event) + 8 : 0) + (id ? strlen(id) + 5 : 0) +
           32 /* "retry: " a long "\n" */ + 1;
}

/* Writes the event into out (sse_cap bytes at least); returns its length. CRLF, a lone LF and a
 * lone CR all end a line of data, as EventSource reads them: a lone CR kept in a data line would
 * start a line of its own at the client, so data could forge an id, event or retry field. */
static size_t sse_format(char *out, size_t cap, const char *event, const char *id, long retry_ms,
                         const char *data)
{
    size_t n = 0;
    if (event) {
        n += (size_t)snprintf(out + n, cap - n, "event: %s\n", event);
    }
    if (id) {
        n += (size_t)snprintf(out + n, cap - n, "id: %s\n", id);
    }
    if (retry_ms >= 0) {
        n += (size_t)snprintf(out + n, cap - n, "retry: %ld\n", retry_ms);
    }
    const char *p = data ? data : "";
    for (;;) {
        size_t len = strcspn(p, "\r\n");
        memcpy(out + n, "data: ", 6);
        n += 6;
        memcpy(out + n, p, len);
        n += len;
        out[n++] = '\n';
        if (!p[len]) {
            break;
        }
        p += len + (p[len] == '\r' && p[len + 1] == '\n' ? 2 : 1);
    }
    out[n++] = '\n';
    return n;
}

static int sse_write(simul_http_response *res, const char *bytes, size_t len)
{
    if (!simul_http_response_started(res)) {
        int rc = simul_http_sse_start(res);
        if (rc < 0) {
            return rc;
        }
    }
    return simul_http_response_write(res, bytes, len);
}

int simul_http_sse_send(simul_http_response *res, const char *event, const char *id,
                        long retry_ms, const char *data)
{
    if (!res || http_has_crlf(event) || http_has_crlf(id)) {
        return -EINVAL;
    }
    /* A typical event fits the stack; a larger one is malloc'd and freed once written (the
     * stream copied what the kernel did not take). */
    char small[1024];
    size_t cap = sse_cap(event, id, data);
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf) {
        return -ENOMEM;
    }
    size_t n = sse_format(buf, cap, event, id, retry_ms, data);
    int rc = sse_write(res, buf, n);
    if (buf != small) {
        free(buf);
    }
    return rc;
}

int simul_http_sse_comment(simul_http_response *res, const char *text)
{
    if (!res || !text || http_has_crlf(text)) {
        return -EINVAL;
    }
    size_t len = strlen(text);
    char small[256];
    char *buf = len + 4 <= sizeof small ? small : malloc(len + 4);
    if (!buf) {
        return -ENOMEM;
    }
    memcpy(buf, ": ", 2);
    memcpy(buf + 2, text, len);
    memcpy(buf + 2 + len, "\n\n", 2);
    int rc = sse_write(res, buf, len + 4);
    if (buf != small) {
        free(buf);
    }
    return rc;
}

/* ---- shared events ---------------------------------------------------------------------- */

int simul_http_sse_event_new(simul_http_sse_event **out, const char *event, const char *id,
                             long retry_ms, const char *data)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (http_has_crlf(event) || http_has_crlf(id)) {
        return -EINVAL;
    }
    size_t cap = sse_cap(event, id, data);
    size_t nlen = event ? strlen(event) : 0, ilen = id ? strlen(id) : 0;
    simul_http_sse_event *ev = malloc(sizeof *ev + cap + 1 + nlen + 1 + ilen + 1);
    if (!ev) {
        return -ENOMEM;
    }
    atomic_init(&ev->refs, 1);
    ev->len = sse_format(ev->wire, cap, event, id, retry_ms, data);
    /* the wire bytes NUL-terminated, name and id after them: one allocation per event */
    ev->wire[ev->len] = '\0';
    char *name = ev->wire + ev->len + 1;
    memcpy(name, event ? event : "", nlen + 1);
    char *idc = name + nlen + 1;
    memcpy(idc, id ? id : "", ilen + 1);
    ev->name = name;
    ev->id = idc;
    *out = ev;
    return 0;
}

simul_http_sse_event *simul_http_sse_event_ref(simul_http_sse_event *ev)
{
    if (ev) {
        atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    }
    return ev;
}

void simul_http_sse_event_unref(simul_http_sse_event *ev)
{
    if (ev && atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) == 1) {
        free(ev);
    }
}

size_t simul_http_sse_event_size(const simul_http_sse_event *ev)
{
    return ev ? ev->len : 0;
}

const char *simul_http_sse_event_name(const simul_http_sse_event *ev)
{
    return ev ? ev->name : NULL;
}

const char *simul_http_sse_event_id(const simul_http_sse_event *ev)
{
    return ev ? ev->id : NULL;
}

const char *simul_http_sse_event_bytes(const simul_http_sse_event *ev)
{
    return ev ? ev->wire : NULL;
}

int simul_http_sse_send_event(simul_http_response *res, const simul_http_sse_event *ev)
{
    if (!res || !ev) {
        return -EINVAL;
    }
    return sse_write(res, ev->wire, ev->len);
}
