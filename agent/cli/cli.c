/* What every sub-command says about bad arguments, in one place: one error line naming the
 * argument and one hint pointing at its --help (never the whole help text). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "commands.h"
#include "common/fileio.h"
#include "log.h"

static void hint_help(void)
{
    const char *cmd = agent_log_command();
    agent_log_hint("'ember %s --help' lists the options", cmd[0] ? cmd : "");
}

int cli_usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_err("%s", msg);
    hint_help();
    return EMBER_EXIT_USAGE;
}

int cli_parse_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *ret)
{
    int64_t v;
    if (cmn_parse_i64(s, &v) < 0 || v < min || v > max)
        return cli_usage_error("%s: '%s' is not an integer in [%lld, %lld]", flag, s,
                               (long long)min, (long long)max);
    *ret = v;
    return 0;
}

int cli_option_error(int opt, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':')
        return cli_usage_error("option '%s' needs a value", arg);
    if (optopt > 0 && optopt < 256 && !(arg[0] == '-' && arg[1] == '-'))
        return cli_usage_error("unknown option '-%c'", optopt);
    return cli_usage_error("unknown option '%s'", arg);
}
