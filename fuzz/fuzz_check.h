/* fuzz_check.h — CHECK for the fuzz targets: a failed check names the target (FUZZ_NAME, defined
 * before the include) and the line, then aborts, which libFuzzer and the replay both report. */
#ifndef SIMUL_FUZZ_CHECK_H
#define SIMUL_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME (the target's name) before including fuzz_check.h"
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, FUZZ_NAME ": check failed at line %d: %s\n", __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* SIMUL_FUZZ_CHECK_H */
