/* ws_internal.h — what the WebSocket files (ws_frame.c, ws_conn.c) share and what they need
 * from the HTTP connection (server.c's takeover hook). Private to src/http/. */
#ifndef SIMUL_HTTP_WS_INTERNAL_H
#define SIMUL_HTTP_WS_INTERNAL_H

#include <simul/http.h>

/* Base64 of a 16-byte handshake key (24 characters and a NUL). */
void http_ws_base64_16(const uint8_t in[16], char out[25]);

#endif /* SIMUL_HTTP_WS_INTERNAL_H */
