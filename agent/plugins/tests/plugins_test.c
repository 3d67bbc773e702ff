/* The plugin loader against real shared objects (test_plugin.c built per variant): the good
 * one loads and each of its hooks is called with what the ABI promises; a wrong ABI version, a
 * missing descriptor, a failing init, a group-writable file, an unknown name and a duplicate are
 * refused with a message naming the file and the reason, and loading goes on. The messages are
 * read back from the agent's own log (stderr, redirected to a file).
 * Usage: plugins_test PLUGIN_DIR (holding probe.so, wrong_abi.so, no_symbol.so, init_fails.so) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ember_test.h"
#include "log.h"
#include "plugins.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod %o '%s'", from, to, (unsigned)mode, to);
    return system(cmd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: plugins_test PLUGIN_DIR\n");
        return 2;
    }
    const char *built = argv[1];
    char dir[] = "/tmp/ember-plugins-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[1024], from[1024], probe_log[1024], agent_log[1024];
    const char *names[] = {"probe", "wrong_abi", "no_symbol", "init_fails"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(from, sizeof(from), "%s/%s.so", built, names[i]);
        snprintf(path, sizeof(path), "%s/%s.so", dir, names[i]);
        CHECK(copy_file(from, path, 0755) == 0);
    }
    snprintf(from, sizeof(from), "%s/probe.so", built);
    snprintf(path, sizeof(path), "%s/writable.so", dir);
    CHECK(copy_file(from, path, 0775) == 0);
    snprintf(path, sizeof(path), "%s/probe2.so", dir);
    CHECK(copy_file(from, path, 0755) == 0);
    snprintf(probe_log, sizeof(probe_log), "%s/probe.log", dir);
    snprintf(agent_log, sizeof(agent_log), "%s/agent.log", dir);

    /* The configuration as the agent would parse it: [plugin.*] sections are the plugins'. */
    char conf[4096];
    int n = snprintf(conf, sizeof(conf),
                     "[plugins]\ndir = %s\nenable = probe wrong_abi no_symbol init_fails writable "
                     "missing probe2 ../escape\n[plugin.probe]\nlog = %s\n[plugin.ghost]\nx = 1\n",
                     dir, probe_log);
    struct agent_config cfg;
    char err[2048];
    CHECK_EQ_INT(agent_config_parse(conf, (size_t)n, "test.conf", &cfg, err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg.plugins.n_settings, 2);
    CHECK_EQ_INT(cfg.plugins.settings[0].line, 5);
    /* a bad plugin section name, and a duplicate plugin key, are configuration errors */
    const char *bad = "[plugin.Bad Name]\nx = 1\n";
    CHECK(agent_config_parse(bad, strlen(bad), "bad.conf", &cfg, err, sizeof(err)) < 0);
    CHECK_CONTAINS(err, "bad.conf:1:");
    const char *dup_key = "[plugin.probe]\nx = 1\nx = 2\n";
    CHECK(agent_config_parse(dup_key, strlen(dup_key), "dup.conf", &cfg, err, sizeof(err)) < 0);
    CHECK_CONTAINS(err, "dup.conf:3: [plugin.probe] x: duplicate key (first set on line 2)");
    CHECK_EQ_INT(agent_config_parse(conf, (size_t)n, "test.conf", &cfg, err, sizeof(err)), 0);

    /* load with the log going to a file */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(agent_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
    struct agent_plugins *ps = NULL;
    int rc = agent_plugins_load(&cfg, &ps);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(agent_plugins_count(ps), 1);
    CHECK_STR(agent_plugins_name(ps, 0), "probe");
    char *log = read_all(agent_log);
    fprintf(stderr, "--- the agent's log ---\n%s---\n", log);
    char want[1024];
    snprintf(want, sizeof(want),
             "%s/wrong_abi.so refused: it was built for plugin ABI version %d, this agent "
             "speaks version %d",
             dir, EMBER_PLUGIN_ABI_VERSION + 1, EMBER_PLUGIN_ABI_VERSION);
    CHECK_CONTAINS(log, want);
    snprintf(want, sizeof(want), "%s/no_symbol.so refused: it exports no 'ember_plugin' symbol",
             dir);
    CHECK_CONTAINS(log, want);
    snprintf(want, sizeof(want),
             "%s/init_fails.so (init_fails) refused: init failed: the probe needs a widget", dir);
    CHECK_CONTAINS(log, want);
    snprintf(want, sizeof(want), "%s/writable.so refused: writable by group or others", dir);
    CHECK_CONTAINS(log, want);
    snprintf(want, sizeof(want), "%s/missing.so refused: No such file or directory", dir);
    CHECK_CONTAINS(log, want);
    snprintf(want, sizeof(want), "%s/probe2.so refused: a plugin named 'probe' is already loaded",
             dir);
    CHECK_CONTAINS(log, want);
    CHECK_CONTAINS(log, "enable: '../escape' refused: a name, not a path");
    CHECK_CONTAINS(log, "[plugin.ghost] is configured but no plugin of that name loaded");
    snprintf(want, sizeof(want), "loaded probe test from %s/probe.so", dir);
    CHECK_CONTAINS(log, want);
    free(log);

    /* before_request on a chat: context goes before the last user message, the source is
     * listed as JSON */
    struct agent_request *req = agent_request_new(AGENT_REQ_CHAT);
    req->messages[0] =
        (struct agent_message){.role = strdup("system"), .content = strdup("be brief")};
    req->messages[1] =
        (struct agent_message){.role = strdup("user"), .content = strdup("first question")};
    req->messages[2] =
        (struct agent_message){.role = strdup("assistant"), .content = strdup("an answer")};
    req->messages[3] =
        (struct agent_message){.role = strdup("user"), .content = strdup("how hot is it?")};
    req->n_messages = 4;
    agent_plugins_before_request(ps, req);
    CHECK_STR(req->messages[3].content, "PROBE CONTEXT\n\nhow hot is it?");
    CHECK_STR(req->messages[1].content, "first question");
    CHECK(req->plugin_answer == NULL);
    CHECK_STR(req->plugin_sources,
              "[{\"id\":\"probe:1\",\"title\":\"The \\\"probe\\\" entry\",\"plugin\":\"probe\","
              "\"score\":1.5}]");
    agent_request_free(req);

    /* a completion: context before the prompt; "!ping" is answered directly */
    req = agent_request_new(AGENT_REQ_COMPLETION);
    req->prompt = strdup("Once upon");
    agent_plugins_before_request(ps, req);
    CHECK_STR(req->prompt, "PROBE CONTEXT\n\nOnce upon");
    agent_request_free(req);
    req = agent_request_new(AGENT_REQ_CHAT);
    req->messages[0] = (struct agent_message){.role = strdup("user"), .content = strdup("!ping")};
    req->n_messages = 1;
    agent_plugins_before_request(ps, req);
    CHECK_STR(req->plugin_answer, "pong");
    CHECK_STR(req->messages[0].content, "!ping"); /* an answered request gets no context */
    agent_request_free(req);

    agent_plugins_token(ps, "Hel", 3, 0);
    agent_plugins_token(ps, "lo", 2, 1);
    struct ember_plugin_telemetry t = {.kind = EMBER_PLUGIN_SAMPLE, .phase = "decode"};
    agent_plugins_telemetry(ps, &t);
    t = (struct ember_plugin_telemetry){
        .kind = EMBER_PLUGIN_SESSION, .prompt_tokens = 7, .gen_tokens = 9, .phase = ""};
    agent_plugins_telemetry(ps, &t);
    agent_plugins_governor_event(ps, "policy_changed", "balanced -> quiet", 1);
    agent_plugins_free(ps);

    log = read_all(probe_log);
    fprintf(stderr, "--- the probe's log ---\n%s---\n", log);
    CHECK_CONTAINS(log, "init probe plugin.probe uid=");
    CHECK_CONTAINS(log, "before_request chat=1 n=4 query=how hot is it?\n");
    CHECK_CONTAINS(log, "before_request chat=0 n=0 query=Once upon\n");
    CHECK_CONTAINS(log, "before_request chat=1 n=1 query=!ping\n");
    CHECK_CONTAINS(log, "token first\n");
    CHECK_CONTAINS(log, "sample phase=decode\n");
    CHECK_CONTAINS(log, "session prompt=7 gen=9\n");
    CHECK_CONTAINS(log, "governor policy_changed: balanced -> quiet\n");
    CHECK_CONTAINS(log, "shutdown tokens=2\n");
    free(log);

    /* no dir: nothing loads, nothing fails */
    struct agent_config none;
    agent_config_defaults(&none);
    CHECK_EQ_INT(agent_plugins_load(&none, &ps), 0);
    CHECK_EQ_INT(agent_plugins_count(ps), 0);
    agent_plugins_free(ps);

    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return et_finish();
}
