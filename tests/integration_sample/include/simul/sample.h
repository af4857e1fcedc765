/* simul/sample.h — the test-only sample integration (tests/integration_sample): proves that
 * cmake/SimulIntegration.cmake makes an installable library with a pkg-config module and a
 * CMake component. Never installed by a real `make install`. */
#ifndef SIMUL_SAMPLE_H
#define SIMUL_SAMPLE_H

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Suspends. Runs n tasks in a task group, each yielding once and counting itself. Returns the
 * count (n), or a negative errno (-EPERM outside a task, -EINVAL for n < 0). */
int simul_sample_count(int n);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_SAMPLE_H */
