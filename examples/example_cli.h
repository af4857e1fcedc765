/* example_cli.h — the command-line plumbing the examples share: a usage error that exits 2,
 * strict number parsing, and "--name value" / "--name=value" options.
 *
 * The example including it defines `progname` and `print_usage` (declared here, as usage_error
 * prints both). Everything else is static inline: an example uses what it needs. */
#ifndef SIMUL_EXAMPLE_CLI_H
#define SIMUL_EXAMPLE_CLI_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_USAGE = 2 };

/* The including example's: its name for messages, and its usage text. */
static const char *progname;
static void print_usage(FILE *out);

/* Prints the problem and the usage to stderr, then exits with the usage status. */
__attribute__((format(printf, 1, 2))) _Noreturn static inline void usage_error(const char *fmt,
                                                                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    print_usage(stderr);
    exit(EXIT_USAGE);
}

/* strtoull alone would accept " 7", "+7" and even "-7" (it negates), so demand digits only. */
static inline bool parse_count(const char *s, size_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > SIZE_MAX)
        return false;
    *out = (size_t)v;
    return true;
}

/* strtod accepts "nan", "inf" and hex floats' overflow; only a finite number in [lo, hi]. */
static inline bool parse_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Takes the value of "--name value" or "--name=value"; NULL if `arg` is not that option. */
static inline const char *option_value(const char *arg, const char *name, int *i, int argc,
                                       char **argv)
{
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return NULL;
    if (arg[len] == '=')
        return arg + len + 1;
    if (arg[len] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        usage_error("%s needs a value", name);
    return argv[++*i];
}

#endif
