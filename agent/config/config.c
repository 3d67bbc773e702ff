/* The INI configuration parser: our reader feeds inih one line at a time so every message knows
 * its line, and checks what inih would accept silently (over-long lines, bytes that are not UTF-8,
 * lines without '=', a ':' delimiter, indented continuation lines). inih splits key and value;
 * the key table (config_keys.c) types and range-checks them. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "exit_codes.h"
#include "governor/policy.h"
#include "log.h"
#include "telemetry/wall.h"

/* The composed key table (config_keys.c). */
static const struct cfg_key *keys(void)
{
    return agent_config_key_table();
}

#define MAX_ERRORS 50

struct parse_ctx {
    const char *name;
    const char *text;
    size_t len;
    size_t pos;
    int lineno;
    char section[CFG_STR_SMALL];
    bool section_known;
    int *set_line; /* per key: line it was set on, 0 = not set */
    struct agent_config *cfg;
    char *err;
    size_t err_len;
    size_t err_used;
    int n_errors;
};

static size_t key_count(void)
{
    size_t n = 0;
    while (keys()[n].section)
        n++;
    return n;
}

static void add_error(struct parse_ctx *ctx, int line, const char *section, const char *key,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_error(struct parse_ctx *ctx, int line, const char *section, const char *key,
                      const char *fmt, ...)
{
    ctx->n_errors++;
    if (ctx->n_errors > MAX_ERRORS || !ctx->err || ctx->err_len == 0)
        return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    char msg[1024];
    if (section && key)
        snprintf(msg, sizeof(msg), "%s:%d: [%s] %s: %s\n", ctx->name, line, section, key, reason);
    else if (section)
        snprintf(msg, sizeof(msg), "%s:%d: [%s]: %s\n", ctx->name, line, section, reason);
    else
        snprintf(msg, sizeof(msg), "%s:%d: %s\n", ctx->name, line, reason);
    size_t n = strlen(msg);
    if (ctx->err_used + n >= ctx->err_len)
        n = ctx->err_len - ctx->err_used - 1;
    memcpy(ctx->err + ctx->err_used, msg, n);
    ctx->err_used += n;
    ctx->err[ctx->err_used] = '\0';
}

/* Returns the offset of the first byte that breaks UTF-8 (overlongs, surrogates and code points
 * past U+10FFFF included), or -1 when the whole span is valid. NUL bytes are rejected too. */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return (long)i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return (long)i;
        }
        if (i + need >= n)
            return (long)i;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += need + 1;
    }
    return -1;
}

static const struct cfg_key *find_key(const char *section, const char *name, size_t *ret_index)
{
    for (size_t i = 0; keys()[i].section; i++) {
        const struct cfg_key *k = &keys()[i];
        if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0) {
            if (ret_index)
                *ret_index = i;
            return k;
        }
    }
    return NULL;
}

static bool section_exists(const char *section)
{
    for (size_t i = 0; keys()[i].section; i++)
        if (strcmp(keys()[i].section, section) == 0)
            return true;
    return false;
}

/* Edit distance, for "did you mean" hints on misspelt keys. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

static const char *closest_key(const char *section, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* only suggest near misses */
    for (size_t i = 0; keys()[i].section; i++) {
        const struct cfg_key *k = &keys()[i];
        if (strcmp(k->section, section) != 0)
            continue;
        size_t d = edit_distance(name, k->name);
        if (d < best_d) {
            best_d = d;
            best = k->name;
        }
    }
    return best;
}

static int parse_bool(const char *v, bool *ret)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcmp(v, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

void agent_config_key_range(const struct cfg_key *k, struct cmn_range *ret, bool *ret_zero_off)
{
    *ret_zero_off = k->zero_off;
    *ret = k->range ? *k->range : (struct cmn_range){k->min, k->max, false};
}

static void format_range(const struct cfg_key *k, char *buf, size_t len)
{
    struct cmn_range r;
    bool zero_off;
    agent_config_key_range(k, &r, &zero_off);
    int n;
    if (r.min_open)
        n = snprintf(buf, len, "%s%g, %g]", "(", r.min, r.max);
    else if (k->type == CFG_INT)
        n = snprintf(buf, len, "%.0f..%.0f", r.min, r.max);
    else
        n = snprintf(buf, len, "%g..%g", r.min, r.max);
    if (zero_off && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ", or 0");
}

/* Whether v is accepted by the key's range. */
static bool in_range(const struct cfg_key *k, double v)
{
    struct cmn_range r;
    bool zero_off;
    agent_config_key_range(k, &r, &zero_off);
    return (zero_off && v == 0) || cmn_range_contains(&r, v);
}

static void format_choices(const struct cfg_key *k, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *const *c = k->choices; *c && used + 1 < len; c++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *c);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Stores one textual value into cfg; on error writes the reason and returns -EINVAL. */
static int store_value(const struct cfg_key *k, const char *value, struct agent_config *cfg,
                       char *reason, size_t reason_len)
{
    char *field = (char *)cfg + k->offset;
    char range[96];
    switch (k->type) {
    case CFG_BOOL: {
        bool b;
        if (parse_bool(value, &b) < 0) {
            snprintf(reason, reason_len, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                     value);
            return -EINVAL;
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    case CFG_INT: {
        int64_t v;
        int rc = cmn_parse_i64(value, &v);
        format_range(k, range, sizeof(range));
        if (rc == -ERANGE || (rc == 0 && !in_range(k, (double)v))) {
            snprintf(reason, reason_len, "%s is out of range (%s)", value, range);
            return -EINVAL;
        }
        if (rc < 0) {
            snprintf(reason, reason_len, "'%s' is not an integer (expected %s)", value, range);
            return -EINVAL;
        }
        if (k->size == sizeof(long long)) {
            long long ll = (long long)v;
            memcpy(field, &ll, sizeof(ll));
        } else {
            int i = (int)v;
            memcpy(field, &i, sizeof(i));
        }
        return 0;
    }
    case CFG_DOUBLE: {
        double v;
        int rc = cmn_parse_double(value, &v);
        format_range(k, range, sizeof(range));
        if (rc == -ERANGE || (rc == 0 && !in_range(k, v))) {
            snprintf(reason, reason_len, "%s is out of range (%s)", value, range);
            return -EINVAL;
        }
        if (rc < 0) {
            snprintf(reason, reason_len, "'%s' is not a number (expected %s)", value, range);
            return -EINVAL;
        }
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    case CFG_STRING: {
        size_t n = strlen(value);
        if (n >= k->size) {
            snprintf(reason, reason_len, "value is %zu bytes long, at most %zu allowed", n,
                     k->size - 1);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20) {
                snprintf(reason, reason_len, "control character in value");
                return -EINVAL;
            }
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    case CFG_ENUM:
        for (const char *const *c = k->choices; *c; c++) {
            if (strcmp(*c, value) == 0) {
                snprintf(field, k->size, "%s", value);
                return 0;
            }
        }
        format_choices(k, range, sizeof(range));
        snprintf(reason, reason_len, "'%s' is not one of: %s", value, range);
        return -EINVAL;
    }
    snprintf(reason, reason_len, "internal: unknown key type");
    return -EINVAL;
}

/* [plugin.NAME]: a plugin's own section; NAME as plugin names go ([a-z0-9_-], 1..31). */
static bool plugin_section(const char *section)
{
    if (strncmp(section, "plugin.", 7) != 0)
        return false;
    size_t n = strlen(section + 7);
    if (n == 0 || n > 31)
        return false;
    for (const char *p = section + 7; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* The agent keeps a plugin's keys as text; the plugin checks them when it starts. */
static void store_plugin_setting(struct parse_ctx *ctx, const char *section, const char *name,
                                 const char *value)
{
    struct cfg_plugins *p = &ctx->cfg->plugins;
    for (size_t i = 0; i < p->n_settings; i++)
        if (strcmp(p->settings[i].section, section) == 0 && strcmp(p->settings[i].key, name) == 0) {
            add_error(ctx, ctx->lineno, section, name, "duplicate key (first set on line %d)",
                      p->settings[i].line);
            return;
        }
    if (p->n_settings == CFG_PLUGIN_SETTINGS) {
        add_error(ctx, ctx->lineno, section, name, "more than %d plugin settings in all",
                  CFG_PLUGIN_SETTINGS);
        return;
    }
    if (strlen(name) >= sizeof(p->settings[0].key) ||
        strlen(value) >= sizeof(p->settings[0].value)) {
        add_error(ctx, ctx->lineno, section, name, "key or value too long (at most %zu bytes)",
                  sizeof(p->settings[0].value) - 1);
        return;
    }
    struct cfg_plugin_setting *st = &p->settings[p->n_settings++];
    snprintf(st->section, sizeof(st->section), "%s", section);
    snprintf(st->key, sizeof(st->key), "%s", name);
    snprintf(st->value, sizeof(st->value), "%s", value);
    st->line = ctx->lineno;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    if (!ctx->section_known)
        return 1; /* the section line was already reported */
    if (!*section) {
        add_error(ctx, ctx->lineno, NULL, NULL, "key '%s' outside any [section]", name);
        return 1;
    }
    if (plugin_section(section)) {
        store_plugin_setting(ctx, section, name, value);
        return 1;
    }
    size_t index;
    const struct cfg_key *k = find_key(section, name, &index);
    if (!k) {
        const char *hint = closest_key(section, name);
        if (hint)
            add_error(ctx, ctx->lineno, section, name, "unknown key (did you mean '%s'?)", hint);
        else
            add_error(ctx, ctx->lineno, section, name, "unknown key");
        return 1;
    }
    if (ctx->set_line[index]) {
        add_error(ctx, ctx->lineno, section, name, "duplicate key (first set on line %d)",
                  ctx->set_line[index]);
        return 1;
    }
    ctx->set_line[index] = ctx->lineno;
    char reason[512];
    if (store_value(k, value, ctx->cfg, reason, sizeof(reason)) < 0)
        add_error(ctx, ctx->lineno, section, name, "%s", reason);
    return 1;
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Checks one line's syntax (leading blanks already skipped). Returns false after reporting. */
static bool check_line_syntax(struct parse_ctx *ctx, const char *line, size_t n)
{
    if (n == 0 || line[0] == ';' || line[0] == '#')
        return true;
    if (line[0] == '[') {
        const char *close = memchr(line, ']', n);
        if (!close) {
            add_error(ctx, ctx->lineno, NULL, NULL, "section header without ']'");
            return false;
        }
        for (const char *p = close + 1; p < line + n; p++) {
            if (*p == ';' || *p == '#')
                break;
            if (*p != ' ' && *p != '\t') {
                add_error(ctx, ctx->lineno, NULL, NULL, "text after section header");
                return false;
            }
        }
        size_t sn = (size_t)(close - line - 1);
        char section[CFG_STR_SMALL];
        if (sn == 0 || sn >= sizeof(section)) {
            add_error(ctx, ctx->lineno, NULL, NULL, "empty or over-long section name");
            return false;
        }
        memcpy(section, line + 1, sn);
        section[sn] = '\0';
        snprintf(ctx->section, sizeof(ctx->section), "%s", section);
        ctx->section_known = section_exists(section) || plugin_section(section);
        if (!ctx->section_known && strncmp(section, "plugin.", 7) == 0)
            add_error(ctx, ctx->lineno, section, NULL,
                      "a plugin's section is plugin.NAME with NAME of 1 to 31 characters "
                      "a-z, 0-9, '_' or '-'");
        else if (!ctx->section_known)
            add_error(ctx, ctx->lineno, section, NULL,
                      "unknown section (known: agent, engine, governor, telemetry, mqtt, api, "
                      "gpio, plugins, plugin.NAME)");
        return ctx->section_known;
    }
    const char *eq = memchr(line, '=', n);
    if (!eq) {
        add_error(ctx, ctx->lineno, ctx->section_known ? ctx->section : NULL, NULL,
                  "missing '=' in \"%.*s\"", (int)(n > 40 ? 40 : n), line);
        return false;
    }
    const char *p = line;
    while (p < eq && is_key_char(*p))
        p++;
    const char *key_end = p;
    while (p < eq && (*p == ' ' || *p == '\t'))
        p++;
    if (key_end == line || p != eq) {
        add_error(ctx, ctx->lineno, ctx->section_known ? ctx->section : NULL, NULL,
                  "invalid key name \"%.*s\" (letters, digits, '_', '-', '.')",
                  (int)(eq - line > 40 ? 40 : eq - line), line);
        return false;
    }
    return true;
}

/* inih's reader: hands out one line per call and blanks out lines that failed our checks, so
 * inih's line count and ours stay the same. */
static char *ini_reader_cb(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;
    if (ctx->pos >= ctx->len)
        return NULL;
    const char *start = ctx->text + ctx->pos;
    const char *nl = memchr(start, '\n', ctx->len - ctx->pos);
    size_t n = nl ? (size_t)(nl - start) : ctx->len - ctx->pos;
    ctx->pos += n + (nl ? 1 : 0);
    ctx->lineno++;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    if (ctx->lineno == 1 && n >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
        start += 3; /* a UTF-8 byte order mark */
        n -= 3;
    }

    bool ok = true;
    long bad = utf8_invalid_at((const unsigned char *)start, n);
    if (n > CFG_MAX_LINE) {
        add_error(ctx, ctx->lineno, NULL, NULL, "line is %zu bytes long, at most %d allowed", n,
                  CFG_MAX_LINE);
        ok = false;
    } else if (bad >= 0) {
        add_error(ctx, ctx->lineno, NULL, NULL, "bytes that are not UTF-8 (at column %ld)",
                  bad + 1);
        ok = false;
    }
    while (ok && n > 0 && (*start == ' ' || *start == '\t')) {
        start++; /* leading blanks would make inih treat the line as a continuation */
        n--;
    }
    if (ok)
        ok = check_line_syntax(ctx, start, n);
    if (!ok || (size_t)num < n + 2) {
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    memcpy(str, start, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

void agent_config_defaults(struct agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char reason[256];
    for (const struct cfg_key *k = keys(); k->section; k++) {
        /* Defaults go through the same parser as the file; config_test proves they all pass. */
        if (store_value(k, k->def, cfg, reason, sizeof(reason)) < 0)
            abort();
    }
    snprintf(cfg->source, sizeof(cfg->source), "(defaults)");
}

static bool wall_spec_ok(const char *spec)
{
    struct tel_wall_params p;
    char err[256];
    tel_wall_params_defaults(&p);
    return tel_wall_parse_spec(spec, &p, err, sizeof(err)) == 0;
}

/* Rules that involve two keys; reported at the line of the key set last. */
static void check_cross_keys(struct parse_ctx *ctx)
{
    const struct agent_config *c = ctx->cfg;
    struct {
        bool bad;
        const char *section, *key, *reason;
    } rules[] = {
        {c->governor.tunables.min_mhz && c->governor.tunables.max_mhz &&
             c->governor.tunables.min_mhz > c->governor.tunables.max_mhz,
         "governor", "min_mhz", "min_mhz is above max_mhz"},
        {c->mqtt.reconnect_min_ms > c->mqtt.reconnect_max_ms, "mqtt", "reconnect_min_ms",
         "reconnect_min_ms is above reconnect_max_ms"},
        {(c->mqtt.tls_cert[0] != 0) != (c->mqtt.tls_key[0] != 0), "mqtt", "tls_cert",
         "tls_cert and tls_key must be set together"},
        {c->governor.tunables.down_threshold >= c->governor.tunables.up_threshold, "governor",
         "down_threshold", "down_threshold must be below up_threshold"},
        {c->gpio.fan_off_temp_c >= c->gpio.fan_on_temp_c, "gpio", "fan_off_temp_c",
         "fan_off_temp_c must be below fan_on_temp_c"},
        {c->gpio.fan_full_temp_c <= c->gpio.fan_on_temp_c, "gpio", "fan_full_temp_c",
         "fan_full_temp_c must be above fan_on_temp_c"},
        {!wall_spec_ok(c->telemetry.wall_meter), "telemetry", "wall_meter",
         "wall_meter must be none, auto, battery, mqtt or hwmon:<name or path>"},
        {strcmp(c->telemetry.wall_meter, "mqtt") == 0 && !c->telemetry.wall_meter_topic[0],
         "telemetry", "wall_meter_topic", "wall_meter = mqtt needs wall_meter_topic"},
        {strcmp(c->telemetry.wall_meter, "mqtt") == 0 && !c->mqtt.enabled, "telemetry",
         "wall_meter", "wall_meter = mqtt needs [mqtt] enabled = true"},
    };
    for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
        if (!rules[r].bad)
            continue;
        int line = 0;
        const char *key = rules[r].key;
        /* blame whichever key of the section the file set last */
        for (size_t i = 0; keys()[i].section; i++) {
            if (strcmp(keys()[i].section, rules[r].section) == 0 && ctx->set_line[i] > line &&
                strstr(rules[r].reason, keys()[i].name)) {
                line = ctx->set_line[i];
                key = keys()[i].name;
            }
        }
        add_error(ctx, line, rules[r].section, key, "%s", rules[r].reason);
    }
    if (ctx->n_errors)
        return;
    /* The governor's own rules for its tunables (e.g. a policy's own checks). */
    const char *bad = NULL;
    char reason[256];
    if (gov_tunables_validate(&c->governor.tunables, &bad, reason, sizeof(reason)) < 0) {
        int line = 0;
        size_t index;
        if (bad && find_key("governor", bad, &index))
            line = ctx->set_line[index];
        add_error(ctx, line, "governor", bad ? bad : "?", "%s", reason);
    }
}

int agent_config_parse(const char *text, size_t len, const char *name, struct agent_config *cfg,
                       char *err, size_t err_len)
{
    struct agent_config *tmp = malloc(sizeof(*tmp));
    int *set_line = calloc(key_count(), sizeof(int));
    if (!tmp || !set_line) {
        free(tmp);
        free(set_line);
        return -ENOMEM;
    }
    agent_config_defaults(tmp);
    struct parse_ctx ctx = {
        .name = name,
        .text = text,
        .len = len,
        .section_known = true,
        .set_line = set_line,
        .cfg = tmp,
        .err = err,
        .err_len = err_len,
    };
    if (err && err_len)
        err[0] = '\0';
    if (len > CFG_MAX_FILE_BYTES) {
        add_error(&ctx, 0, NULL, NULL, "file is %zu bytes, larger than the %d allowed", len,
                  CFG_MAX_FILE_BYTES);
    } else {
        int rc = ini_parse_stream(ini_reader_cb, &ctx, on_ini_value, &ctx);
        if (rc > 0 && ctx.n_errors == 0)
            add_error(&ctx, rc, NULL, NULL, "syntax error");
        else if (rc < 0)
            add_error(&ctx, 0, NULL, NULL, "parser failed (%d)", rc);
        if (ctx.n_errors == 0)
            check_cross_keys(&ctx);
    }
    if (ctx.n_errors > MAX_ERRORS && err && err_len) {
        size_t used = strlen(err);
        snprintf(err + used, err_len - used, "%s: ... %d more problems\n", name,
                 ctx.n_errors - MAX_ERRORS);
    }
    int rc = 0;
    if (ctx.n_errors) {
        rc = -EINVAL;
    } else {
        snprintf(tmp->source, sizeof(tmp->source), "%s", name);
        *cfg = *tmp;
    }
    free(tmp);
    free(set_line);
    return rc;
}

int agent_config_load_file(const char *path, struct agent_config *cfg, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, err_len, "%s: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(err, err_len, "%s: is a directory, not a configuration file\n", path);
        return -EISDIR;
    }
    char *buf = malloc(CFG_MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, f);
    int rc = ferror(f) ? (errno ? -errno : -EIO) : 0;
    fclose(f);
    if (rc == 0)
        rc = agent_config_parse(buf, n, path, cfg, err, err_len);
    else
        snprintf(err, err_len, "%s: %s\n", path, strerror(-rc));
    free(buf);
    return rc;
}

static void format_value(const struct cfg_key *k, const struct agent_config *cfg, char *buf,
                         size_t len)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case CFG_BOOL: {
        bool b;
        memcpy(&b, field, sizeof(b));
        snprintf(buf, len, "%s", b ? "true" : "false");
    } break;
    case CFG_INT:
        if (k->size == sizeof(long long)) {
            long long ll;
            memcpy(&ll, field, sizeof(ll));
            snprintf(buf, len, "%lld", ll);
        } else {
            int i;
            memcpy(&i, field, sizeof(i));
            snprintf(buf, len, "%d", i);
        }
        break;
    case CFG_DOUBLE: {
        double d;
        memcpy(&d, field, sizeof(d));
        snprintf(buf, len, "%g", d);
    } break;
    case CFG_STRING:
    case CFG_ENUM:
        snprintf(buf, len, "%s", field);
        break;
    }
}

/* Writes text as '#' comment lines wrapped at 100 columns. */
static void print_wrapped_comment(FILE *out, const char *text)
{
    const int width = 96;
    const char *p = text;
    while (*p) {
        int n = (int)strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = width;
        }
        fprintf(out, "# %.*s\n", n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

void agent_config_dump(const struct agent_config *cfg, FILE *out, bool with_docs)
{
    const char *section = NULL;
    if (with_docs)
        fprintf(out, "# Ember configuration (/etc/ember/ember.conf). Every key with its default;\n"
                     "# generated by `ember config dump --docs --defaults`. Lines are `key = "
                     "value`;\n# comments start with '#' or ';'. Keys marked (live) change on "
                     "SIGHUP; others\n# need a restart.\n");
    for (const struct cfg_key *k = keys(); k->section; k++) {
        if (!section || strcmp(section, k->section) != 0) {
            /* a blank line between sections, and after the header comment; none first */
            fprintf(out, "%s[%s]\n", section || with_docs ? "\n" : "", k->section);
            section = k->section;
        }
        char value[CFG_STR_PATH + 16];
        format_value(k, cfg, value, sizeof(value));
        if (k->secret && value[0] && !with_docs)
            snprintf(value, sizeof(value), "(hidden)");
        if (with_docs) {
            char extra[256], detail[128];
            if (k->type == CFG_INT || k->type == CFG_DOUBLE)
                format_range(k, detail, sizeof(detail));
            else if (k->type == CFG_ENUM)
                format_choices(k, detail, sizeof(detail));
            else if (k->type == CFG_BOOL)
                snprintf(detail, sizeof(detail), "true/false");
            else
                snprintf(detail, sizeof(detail), "text");
            snprintf(extra, sizeof(extra), "%s. Default: %s%s", detail,
                     k->def[0] ? k->def : "(empty)", k->live ? " (live)" : "");
            fputc('\n', out);
            print_wrapped_comment(out, k->doc);
            print_wrapped_comment(out, extra);
        }
        fprintf(out, "%s =%s%s\n", k->name, value[0] ? " " : "", value);
    }
    /* the plugins' own sections, as the file had them (their keys are the plugins') */
    const char *plugin = NULL;
    for (size_t i = 0; i < cfg->plugins.n_settings; i++) {
        const struct cfg_plugin_setting *st = &cfg->plugins.settings[i];
        if (!plugin || strcmp(plugin, st->section) != 0)
            fprintf(out, "\n[%s]\n", st->section);
        plugin = st->section;
        fprintf(out, "%s = %s\n", st->key, st->value);
    }
}

int agent_config_restart_keys(const struct agent_config *a, const struct agent_config *b, char *buf,
                              size_t len)
{
    int count = 0;
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (const struct cfg_key *k = keys(); k->section; k++) {
        if (k->live)
            continue;
        char va[CFG_STR_PATH + 16], vb[CFG_STR_PATH + 16];
        format_value(k, a, va, sizeof(va));
        format_value(k, b, vb, sizeof(vb));
        if (strcmp(va, vb) == 0)
            continue;
        count++;
        if (used < len) {
            int n = snprintf(buf + used, len - used, "%s[%s] %s", count > 1 ? ", " : "", k->section,
                             k->name);
            if (n > 0)
                used += (size_t)n;
        }
    }
    /* plugins read their sections once, when they start */
    bool same = a->plugins.n_settings == b->plugins.n_settings;
    for (size_t i = 0; same && i < a->plugins.n_settings; i++)
        same = memcmp(&a->plugins.settings[i], &b->plugins.settings[i],
                      sizeof(a->plugins.settings[i])) == 0 ||
               (strcmp(a->plugins.settings[i].value, b->plugins.settings[i].value) == 0 &&
                strcmp(a->plugins.settings[i].key, b->plugins.settings[i].key) == 0 &&
                strcmp(a->plugins.settings[i].section, b->plugins.settings[i].section) == 0);
    if (!same) {
        count++;
        if (used < len)
            snprintf(buf + used, len - used, "%s[plugin.*] sections", count > 1 ? ", " : "");
    }
    return count;
}

void agent_config_apply_live(struct agent_config *cur, const struct agent_config *next)
{
    for (const struct cfg_key *k = keys(); k->section; k++)
        if (k->live)
            memcpy((char *)cur + k->offset, (const char *)next + k->offset, k->size);
}

static void log_lines(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        if (n > 0)
            log_err("%.*s", n, p);
        p += n + (nl ? 1 : 0);
    }
}

int agent_config_load_for_cli(const char *path, struct agent_config *cfg)
{
    char err[8192];
    bool explicit_path = path != NULL;
    if (!path)
        path = EMBER_DEFAULT_CONFIG;
    int rc = agent_config_load_file(path, cfg, err, sizeof(err));
    if (rc == -ENOENT && !explicit_path) {
        agent_config_defaults(cfg);
        return 0;
    }
    if (rc < 0) {
        log_lines(err);
        return EMBER_EXIT_USAGE;
    }
    enum agent_log_level level;
    if (agent_log_level_parse(cfg->agent.log_level, &level) == 0)
        agent_log_set_level(level);
    return 0;
}
