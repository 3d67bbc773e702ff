/* `ember tokenize`: reads UTF-8 text on stdin and prints its token ids, space-separated on one
 * line, using the vocabulary of a GGUF file (only the tokenizer metadata is read, so a vocab-only
 * file works). With --pieces it prints one token per line with the bytes it stands for, so any
 * vocabulary can be checked from the shell against llama.cpp or a reference file. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "engine/tokenizer.h"
#include "log.h"

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: ember tokenize -m MODEL [--pieces] [--no-bos] [--special] < TEXT\n"
            "\n"
            "Tokenizes the UTF-8 text read from stdin (exactly as read: `echo` adds a newline,\n"
            "`printf %%s` does not) and prints the token ids space-separated on one line.\n"
            "\n"
            "  -m, --model FILE   GGUF model or vocab-only file (default: [engine] model)\n"
            "      --pieces       one token per line: id and its piece, quoted and escaped\n"
            "      --no-bos       add no BOS/EOS even where the vocabulary asks for them\n"
            "      --special      recognise control tokens written in the text (<|im_start|>)\n"
            "      --config FILE  configuration file (default " EMBER_DEFAULT_CONFIG ")\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit codes: 0 ok, 1 unreadable model or input, 2 usage error.\n");
}

static char *read_stdin(size_t *ret_len)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0)
            break;
        if (len == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *ret_len = len;
    return buf;
}

/* Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and
 * values past U+10FFFF included), or -1. */
static long utf8_invalid_at(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07u;
        } else {
            return (long)i;
        }
        if (i + len > n)
            return (long)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return (long)i;
        i += len;
    }
    return -1;
}

/* Prints a piece between single quotes: printable UTF-8 as is, the rest escaped. */
static void print_piece(const char *p, size_t n)
{
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c == '\\' || c == '\'')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            printf("\\x%02x", c);
        else if (c >= 0x80) {
            /* a complete UTF-8 sequence passes; stray bytes are escaped */
            size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
            bool ok = len && i + len <= n;
            for (size_t k = 1; ok && k < len; k++)
                ok = ((unsigned char)p[i + k] & 0xC0) == 0x80;
            if (ok) {
                fwrite(p + i, 1, len, stdout);
                i += len - 1;
            } else {
                printf("\\x%02x", c);
            }
        } else {
            putchar(c);
        }
    }
    putchar('\'');
}

int cmd_tokenize(int argc, char **argv)
{
    enum { OPT_PIECES = 256, OPT_NO_BOS, OPT_SPECIAL, OPT_CONFIG };
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"pieces", no_argument, NULL, OPT_PIECES},
        {"no-bos", no_argument, NULL, OPT_NO_BOS},
        {"special", no_argument, NULL, OPT_SPECIAL},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *config = NULL;
    bool pieces = false, no_bos = false, special = false;
    struct eng_vocab *vocab = NULL;
    char *text = NULL, *model_buf = NULL;
    int32_t *ids = NULL;
    int opt, ret = EMBER_EXIT_FAILURE;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            model = optarg;
            break;
        case OPT_PIECES:
            pieces = true;
            break;
        case OPT_NO_BOS:
            no_bos = true;
            break;
        case OPT_SPECIAL:
            special = true;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        case 'h':
            tokenize_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s' (the text comes on stdin)", argv[optind]);
    /* the configuration is checked like every other command's, even when -m makes it unused */
    struct agent_config cfg;
    if (agent_config_load_for_cli(config, &cfg))
        return EMBER_EXIT_USAGE;
    if (!model && cfg.engine.model[0])
        model = model_buf = strdup(cfg.engine.model);
    if (!model) {
        log_err("no model");
        agent_log_hint("give -m FILE, or set [engine] model in the configuration");
        return EMBER_EXIT_USAGE;
    }

    char err[512];
    int rc = eng_vocab_load_file(model, &vocab, err, sizeof(err));
    if (rc) {
        log_err("%s", err);
        goto done;
    }
    size_t len = 0;
    text = read_stdin(&len);
    if (!text) {
        log_err("reading stdin: %s", strerror(errno ? errno : EIO));
        goto done;
    }
    long bad = utf8_invalid_at(text, len);
    if (bad >= 0)
        log_warn("stdin is not valid UTF-8 (byte %ld); such bytes are tokenized as they are", bad);

    size_t cap = len + 16, n = 0;
    ids = malloc(cap * sizeof(*ids));
    rc = ids ? eng_tokenize(vocab, text, len, !no_bos, special, ids, cap, &n) : -ENOMEM;
    if (rc == -ENOSPC) {
        /* more ids than bytes can only come from BOS/EOS around tiny inputs; be exact anyway */
        int32_t *grown = realloc(ids, n * sizeof(*ids));
        rc = grown ? eng_tokenize(vocab, text, len, !no_bos, special, grown, n, &n) : -ENOMEM;
        if (grown)
            ids = grown;
    }
    if (rc) {
        log_err("%s", strerror(-rc));
        goto done;
    }

    if (pieces) {
        char piece[4096];
        for (size_t i = 0; i < n; i++) {
            size_t plen = 0;
            rc = eng_token_piece(vocab, ids[i], true, piece, sizeof(piece), &plen);
            printf("%d ", ids[i]);
            print_piece(piece, rc == 0 ? plen : 0);
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    ret = fflush(stdout) == 0 ? EMBER_EXIT_OK : EMBER_EXIT_FAILURE;
done:
    free(ids);
    free(text);
    free(model_buf);
    eng_vocab_free(vocab);
    return ret;
}
