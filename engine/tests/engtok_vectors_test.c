/* Tokenizer conformance: every case of one vocabulary's llama.cpp-format test files in
 * shared/vectors/tokenizer (<vocab>.inp / .out, or .special.inp / .special.out with
 * parse_special) must tokenize to exactly the expected ids. Also round-trips every case through
 * the detokenizer where llama.cpp's pieces reproduce the text. Usage: engtok_vectors_test
 * <vocab file name> [special] */
#include "ember_test.h"

#include "engine/tokenizer.h"

#include <errno.h>
#include <stdint.h>

static char *read_all(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap + 1);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *g = realloc(buf, 2 * cap + 1);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = 0;
    *ret_len = len;
    return buf;
}

int main(int argc, char **argv)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char path[4096], err[512];
    struct eng_vocab *v = NULL;
    size_t inp_len, out_len;

    if (argc < 2) {
        fprintf(stderr, "usage: %s VOCAB.gguf [special]\n", argv[0]);
        return 2;
    }
    bool special = argc > 2 && !strcmp(argv[2], "special");
    const char *suffix = special ? ".special" : "";

    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s", et_shared_dir(), argv[1]);
    int rc = eng_vocab_load_file(path, &v, err, sizeof(err));
    if (rc == -ENOENT && !fopen(path, "rb")) {
        fprintf(stderr, "skip: %s not present\n", path);
        return ET_SKIP;
    }
    CHECK_MSG(rc == 0, "load %s: %s", path, err);
    if (rc)
        return et_finish();

    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s%s.inp", et_shared_dir(), argv[1], suffix);
    char *inp = read_all(path, &inp_len);
    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s%s.out", et_shared_dir(), argv[1], suffix);
    char *outf = read_all(path, &out_len);
    CHECK_MSG(inp && outf, "reading the .inp/.out files of %s", argv[1]);
    if (!inp || !outf)
        return et_finish();

    size_t cap = 1 << 16;
    int32_t *ids = malloc(cap * sizeof(*ids));
    char *op = outf;

    int n_cases = 0, n_ok = 0;
    char *p = inp;
    size_t sep_len = strlen(sep);
    while (p < inp + inp_len) {
        char *end = strstr(p, sep);
        if (!end)
            break;
        size_t text_len = (size_t)(end - p);

        /* expected line */
        char *eol = strchr(op, '\n');
        if (!eol)
            eol = op + strlen(op);
        int32_t expect[4096];
        size_t n_expect = 0;
        for (char *q = op; q < eol;) {
            while (q < eol && *q == ' ')
                q++;
            if (q >= eol)
                break;
            expect[n_expect++] = (int32_t)strtol(q, &q, 10);
        }
        op = *eol ? eol + 1 : eol;

        size_t n = 0;
        rc = eng_tokenize(v, p, text_len, false, special, ids, cap, &n);
        bool same = rc == 0 && n == n_expect;
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == expect[i];
        n_cases++;
        if (same) {
            n_ok++;
            et_passed++;
        } else {
            et_failed++;
            fprintf(stderr, "case %d FAILED (rc %d): text \"%.*s\"\n  got     :", n_cases, rc,
                    (int)text_len, p);
            for (size_t i = 0; i < n && i < 64; i++)
                fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n  expected:");
            for (size_t i = 0; i < n_expect && i < 64; i++)
                fprintf(stderr, " %d", expect[i]);
            fprintf(stderr, "\n");
        }

        /* -ENOSPC reports the count needed */
        if (n_expect > 0) {
            size_t need = 0;
            CHECK_EQ_INT(eng_tokenize(v, p, text_len, false, special, ids, n_expect - 1, &need),
                         -ENOSPC);
            CHECK_EQ_INT(need, n_expect);
        }

        /* Detokenizing the expected ids streams valid UTF-8 that contains the text (SPM adds
         * a leading space, which the strip flag removes). */
        if (!special && n_expect > 0) {
            struct eng_detok d;
            eng_detok_init(&d, v, ENG_DETOK_STRIP_LEADING_SPACE);
            size_t tcap = 3 * text_len + 64 + eng_detok_max_out(v), tn = 0, k;
            char *tbuf = malloc(tcap);
            for (size_t i = 0; i < n_expect; i++) {
                CHECK_EQ_INT(eng_detok_push(&d, expect[i], tbuf + tn, tcap - tn, &k), 0);
                tn += k;
            }
            CHECK_EQ_INT(eng_detok_flush(&d, tbuf + tn, tcap - tn, &k), 0);
            tn += k;
            /* byte-exact unless the vocabulary lost characters (SPM <unk>) */
            bool has_unk = false;
            for (size_t i = 0; i < n_expect; i++)
                has_unk |= expect[i] == eng_vocab_unk(v);
            if (!has_unk)
                CHECK_MSG(tn == text_len && !memcmp(tbuf, p, text_len),
                          "case %d detokenized to \"%.*s\"", n_cases, (int)tn, tbuf);
            free(tbuf);
        }
        p = end + sep_len;
    }
    printf("%s%s: %d/%d cases match\n", argv[1], suffix, n_ok, n_cases);
    CHECK(n_cases > 0);
    free(ids);
    free(inp);
    free(outf);
    eng_vocab_free(v);
    return et_finish();
}
