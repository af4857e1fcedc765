/* signal.h — what simul_run (run.c) uses of signal.c: a handler the kernel resets to the
 * default action once it has fired (SA_RESETHAND), so a second SIGINT kills at once. */
#ifndef SIMUL_IO_SIGNAL_H
#define SIMUL_IO_SIGNAL_H

#include <stdbool.h>

#include "simul.h"

/* simul_add_signal_handler; with `oneshot` the disposition goes back to SIG_DFL when the signal
 * is first delivered (the handler still runs on the loop for that one). */
int simul__signal_add(int sig, simul_signal_cb cb, void *arg, bool oneshot);

#endif
