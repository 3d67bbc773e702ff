/* The log's rate limiter: an identical line repeated within its window prints once (and the
 * next one after the window says how many were swallowed), while agent_log_event lines, the
 * state transitions, print every time. Reads back what the log wrote to stderr (a real file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ember_test.h"

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

int main(void)
{
    char path[] = "/tmp/ember-log-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return 1;
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    unsetenv("JOURNAL_STREAM");
    agent_log_set_level(AGENT_LOG_INFO);

    for (int i = 0; i < 3; i++)
        log_warn("limited: the same line");
    for (int i = 0; i < 3; i++)
        agent_log_event(AGENT_LOG_WARNING, "event: connection lost");
    agent_log_event(AGENT_LOG_DEBUG, "event: below the level");
    /* events do not count against the limiter: the limited line after them is still swallowed */
    log_warn("limited: the same line");

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    char text[4096] = "";
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
    close(fd);
    printf("%s", text);

    CHECK_EQ_INT(count_lines(text, "limited: the same line"), 1);
    CHECK_EQ_INT(count_lines(text, "event: connection lost\n"), 3);
    CHECK_EQ_INT(count_lines(text, "ember: warning: event: connection lost"), 3);
    CHECK_EQ_INT(count_lines(text, "below the level"), 0);
    CHECK_EQ_INT(count_lines(text, "suppressed"), 0);
    return et_finish();
}
